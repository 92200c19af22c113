import uuid

from django.conf import settings
from django.db import models

from voicebots.core.encryption import EncryptedTextField


class Account(models.Model):
    """A tenant. Every piece of tenant data hangs off one account."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    auth_id = models.CharField(max_length=20, unique=True, editable=False)
    # sha256 of the API token: tokens are 40 random characters, so a fast hash is safe and keeps
    # authentication off the request's critical path.
    auth_token_hash = models.CharField(max_length=64, editable=False)
    plivo_auth_id = EncryptedTextField(blank=True, default="")
    plivo_auth_token = EncryptedTextField(blank=True, default="")
    webhook_secret = EncryptedTextField(editable=False)
    recording_retention_days = models.PositiveIntegerField(
        default=30, help_text="Call recordings older than this many days are deleted; 0 keeps them forever.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.auth_id})"


class Membership(models.Model):
    """Links a browser user to an account they work in; a user may belong to several."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["user", "account"], name="unique_membership")]

    def __str__(self):
        return f"{self.user} in {self.account}"
