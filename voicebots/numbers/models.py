from django.db import models

from voicebots.accounts.models import Account


class BotApplication(models.Model):
    """The Plivo application that answers calls for one bot; every number assigned to the bot links to it."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="bot_applications")
    voicebot = models.OneToOneField("bots.Voicebot", on_delete=models.CASCADE, related_name="plivo_application")
    app_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class NumberAssignment(models.Model):
    """A Plivo number pointed at a bot, and the application it had before (given back on unassigning)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="number_assignments")
    number = models.CharField(max_length=32, help_text="As Plivo writes it: digits with the country code.")
    voicebot = models.ForeignKey("bots.Voicebot", on_delete=models.SET_NULL, null=True,
                                 related_name="number_assignments")
    app_id = models.CharField(max_length=64, help_text="The bot's Plivo application.")
    previous_app_id = models.CharField(max_length=64, blank=True, default="",
                                       help_text="Empty: the account's default application.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["account", "number"], name="unique_account_number")]

    def __str__(self):
        return f"+{self.number}"
