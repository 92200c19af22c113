from django.db import models

from voicebots.accounts.models import Account


class HourlyCallStats(models.Model):
    """Calls of one bot in one hour (by the hour the call started), rolled up for the console's overview.

    Rows are recomputed whole from the calls and their turns (`stats.refresh`), never incremented, so a call
    that changes later (its status, its last turns) is counted right once its hour is refreshed again.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    voicebot = models.ForeignKey("bots.Voicebot", on_delete=models.SET_NULL, null=True, related_name="+")
    hour = models.DateTimeField()
    calls = models.PositiveIntegerField(default=0)
    answered = models.PositiveIntegerField(default=0)
    unanswered = models.PositiveIntegerField(default=0)  # busy, no answer, cancelled
    failed = models.PositiveIntegerField(default=0)
    voicemail = models.PositiveIntegerField(default=0)
    seconds = models.BigIntegerField(default=0)
    turns = models.PositiveIntegerField(default=0)
    interrupted = models.PositiveIntegerField(default=0)
    tool_calls = models.PositiveIntegerField(default=0)
    tool_errors = models.PositiveIntegerField(default=0)
    replies = models.PositiveIntegerField(default=0)  # turns answering the caller with a measured latency
    latency_sum = models.FloatField(default=0)
    stt_sum = models.FloatField(default=0)
    llm_sum = models.FloatField(default=0)
    tts_sum = models.FloatField(default=0)
    platform_sum = models.FloatField(default=0)
    latency_histogram = models.JSONField(default=dict, help_text="{bucket's lower bound in ms: replies}")
    end_reasons = models.JSONField(default=dict, help_text="{end reason: calls}")

    class Meta:
        indexes = [models.Index(fields=["account", "hour"])]


class StatsRefresh(models.Model):
    """When the hourly statistics were last brought up to date (one row)."""

    refreshed_at = models.DateTimeField()
