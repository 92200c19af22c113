import uuid

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector
from django.db import models

from voicebots.accounts.models import Account


class Call(models.Model):
    """One phone call with a bot, written as the call goes so a crash still leaves a record."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RINGING = "ringing"
        IN_PROGRESS = "in-progress"
        COMPLETED = "completed"
        BUSY = "busy"
        NO_ANSWER = "no-answer"
        FAILED = "failed"
        CANCELED = "canceled"
        VOICEMAIL = "voicemail"

    ENDED = {Status.COMPLETED, Status.BUSY, Status.NO_ANSWER, Status.FAILED, Status.CANCELED, Status.VOICEMAIL}

    class Direction(models.TextChoices):
        INBOUND = "inbound"
        OUTBOUND = "outbound"
        WEB = "web"  # a browser call from the voice playground

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="calls")
    voicebot = models.ForeignKey("bots.Voicebot", on_delete=models.SET_NULL, null=True, related_name="calls")
    direction = models.CharField(max_length=16, choices=Direction.choices, default=Direction.INBOUND)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    call_uuid = models.CharField(max_length=64, blank=True, default="", help_text="Plivo's CallUUID.")
    request_uuid = models.CharField(max_length=64, blank=True, default="", help_text="Plivo's request_uuid.")
    stream_id = models.CharField(max_length=64, blank=True, default="")
    from_number = models.CharField(max_length=64, blank=True, default="")
    to_number = models.CharField(max_length=64, blank=True, default="")
    variables = models.JSONField(default=dict, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    stream_started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    hangup_cause = models.CharField(max_length=128, blank=True, default="")
    end_reason = models.CharField(max_length=255, blank=True, default="",
                                  help_text="Why the call ended, in words (e.g. the caller hung up).")
    history = models.JSONField(default=list, blank=True, help_text="The conversation as the model saw it.")
    analysis = models.JSONField(null=True, blank=True, help_text="Post-call analysis, once the call has ended.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"]), models.Index(fields=["call_uuid"]),
                   models.Index(fields=["voicebot", "status"])]

    def __str__(self):
        return f"{self.direction} {self.from_number} -> {self.to_number} ({self.status})"

    @property
    def has_ended(self) -> bool:
        return self.status in self.ENDED


class CallTurn(models.Model):
    """One exchange: what the caller said and what the bot said, as heard, with its timings."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveIntegerField()
    caller_text = models.TextField(blank=True, default="")
    bot_text = models.TextField(blank=True, default="", help_text="What the caller actually heard.")
    interrupted = models.BooleanField(default=False)
    tool_calls = models.JSONField(default=list, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="Milliseconds of each stage of the turn.")
    passages = models.JSONField(default=list, blank=True, help_text="Knowledge excerpts the reply was written from.")
    speech_ended_at = models.DateTimeField(
        null=True, blank=True, help_text="When the caller stopped speaking (a greeting: when it started); the "
                                         "timings' *_at_ms count from here.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["call", "index"]
        constraints = [models.UniqueConstraint(fields=["call", "index"], name="unique_call_turn_index")]
        # The console's transcript search (see console.selectors.calls).
        indexes = [GinIndex(SearchVector("caller_text", "bot_text", config="simple"), name="callturn_text_search")]


class CallEvent(models.Model):
    """Something worth knowing that happened on a call: a vendor failure, a reconnect, DTMF, a transfer."""

    call = models.ForeignKey(Call, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=64)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["call", "created_at", "id"]
