import uuid

from django.core.validators import URLValidator
from django.db import models

from voicebots.accounts.models import Account

DEFAULT_TIMEOUT_SECONDS = 5.0


class Function(models.Model):
    """A webhook the bot can call as a tool."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="functions")
    name = models.CharField(max_length=64, help_text="The tool name the model sees.")
    description = models.TextField(blank=True, default="")
    handler_url = models.CharField(max_length=2000, validators=[URLValidator(schemes=["http", "https"])])
    user_parameters = models.JSONField(default=list, blank=True, help_text="What the model fills in.")
    fixed_parameters = models.JSONField(default=list, blank=True, help_text="Constants never shown to the model.")
    timeout_seconds = models.FloatField(default=DEFAULT_TIMEOUT_SECONDS)
    filler_message = models.CharField(
        max_length=200, blank=True, default="",
        help_text="Said on a call when the handler is slow (blank: the bot's own filler line).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="unique_function_name_per_account")]

    def __str__(self):
        return self.name
