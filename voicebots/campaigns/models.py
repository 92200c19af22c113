import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models

from voicebots.accounts.models import Account
from voicebots.calls.models import Call

RETRYABLE_OUTCOMES = ("busy", "no-answer", "failed", "voicemail")


def default_retry_on() -> list[str]:
    return ["busy", "no-answer", "failed"]  # not voicemail: a message was left, or the machine was hung up on


class Campaign(models.Model):
    """A bot calling a list of contacts from the account's numbers, inside calling windows."""

    class Status(models.TextChoices):
        DRAFT = "draft"
        SCHEDULED = "scheduled"
        RUNNING = "running"
        PAUSED = "paused"
        COMPLETED = "completed"
        CANCELLED = "cancelled"

    class VoicemailAction(models.TextChoices):
        LEAVE_MESSAGE = "leave_message"
        HANG_UP = "hang_up"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=200)
    voicebot = models.ForeignKey("bots.Voicebot", on_delete=models.SET_NULL, null=True, related_name="campaigns")
    caller_ids = ArrayField(models.CharField(max_length=32), default=list,
                            help_text="E.164 numbers of the account's Plivo numbers to call from, used in turn.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    status_reason = models.CharField(max_length=255, blank=True, default="",
                                     help_text="Why the campaign paused or ended on its own.")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    timezone = models.CharField(max_length=64, default="UTC",
                                help_text="Time zone of contacts whose row names none (IANA name).")
    calling_windows = models.JSONField(
        default=dict, blank=True,
        help_text='Local hours per weekday in the contact\'s time zone, e.g. {"mon": [["09:00", "17:00"]]}.')
    max_concurrent_calls = models.PositiveIntegerField(default=5)
    max_attempts = models.PositiveSmallIntegerField(default=3, help_text="Calls per contact at most.")
    retry_delay_minutes = models.PositiveIntegerField(default=60)
    retry_on = ArrayField(models.CharField(max_length=16), default=default_retry_on,
                          help_text=f"Outcomes that are tried again: any of {', '.join(RETRYABLE_OUTCOMES)}.")
    ring_timeout = models.PositiveSmallIntegerField(default=30, help_text="Seconds to ring before giving up.")
    machine_detection = models.BooleanField(default=False)
    voicemail_action = models.CharField(max_length=16, choices=VoicemailAction.choices,
                                        default=VoicemailAction.HANG_UP,
                                        help_text="With machine detection: what a machine that answers gets.")
    voicemail_message = models.TextField(blank=True, default="",
                                         help_text="Spoken after the beep; {{name}} placeholders allowed.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"]), models.Index(fields=["status"])]

    def __str__(self):
        return self.name

    @property
    def plivo_machine_detection(self) -> str | None:
        if not self.machine_detection:
            return None
        return "true" if self.voicemail_action == self.VoicemailAction.LEAVE_MESSAGE else "hangup"


class Contact(models.Model):
    """One person to call, with the variables their call's prompt is filled with."""

    class State(models.TextChoices):
        PENDING = "pending"  # waiting for its turn (next_attempt_at) and an open window
        DIALING = "dialing"  # claimed by a dispatcher; the call is being placed
        CALLING = "calling"  # the call is with Plivo
        COMPLETED = "completed"
        VOICEMAIL = "voicemail"
        FAILED = "failed"
        SKIPPED = "skipped"  # the campaign ended or was cancelled first

    REMAINING = (State.PENDING, State.DIALING, State.CALLING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="contacts")
    phone_number = models.CharField(max_length=32)
    variables = models.JSONField(default=dict, blank=True)
    timezone = models.CharField(max_length=64, blank=True, default="",
                                help_text="Empty: the campaign's time zone.")
    line_number = models.PositiveIntegerField(default=0, help_text="Line of the CSV it came from.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When a dispatcher took it (its lease).")
    answered_at = models.DateTimeField(null=True, blank=True, help_text="When a person first answered.")
    outcome = models.CharField(max_length=16, blank=True, default="", help_text="The last call's status.")
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["campaign", "line_number"]
        constraints = [models.UniqueConstraint(fields=["campaign", "phone_number"], name="unique_campaign_phone")]
        # The dispatcher's claim: a campaign's pending contacts that are due, in order, read off the index.
        indexes = [models.Index(fields=["campaign", "state", "next_attempt_at", "line_number"])]

    def __str__(self):
        return self.phone_number


class Attempt(models.Model):
    """One call made to a contact."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="attempts")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="call_attempts")
    call = models.OneToOneField(Call, on_delete=models.CASCADE, related_name="campaign_attempt")
    number = models.PositiveSmallIntegerField()
    dial_started_at = models.DateTimeField(null=True, blank=True,
                                           help_text="When a worker began asking Plivo (set before asking).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["contact", "number"]
        constraints = [models.UniqueConstraint(fields=["contact", "number"], name="unique_contact_attempt")]
