from django.db import models

from voicebots.accounts.models import Account
from voicebots.calls.models import Call


class Recording(models.Model):
    """The stereo recording of one call (left the caller, right the bot as heard) and what became of it."""

    class Status(models.TextChoices):
        RECORDING = "recording"  # the call is on: the file grows on this machine's disk
        STORING = "storing"  # the call ended: waiting to be copied to the bucket
        READY = "ready"
        FAILED = "failed"  # nothing to play: `error` says why
        DELETED = "deleted"  # removed by a user or by the account's retention

    call = models.OneToOneField(Call, on_delete=models.CASCADE, primary_key=True, related_name="recording")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="recordings")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECORDING)
    name = models.CharField(max_length=255, help_text="The file's name in the recordings storage.")
    spool_path = models.CharField(max_length=500, blank=True, default="",
                                  help_text="The local file written during the call, when the storage is a bucket.")
    host = models.CharField(max_length=255, blank=True, default="", help_text="The machine that wrote the file.")
    started_at = models.DateTimeField(help_text="The wall-clock time of the recording's first sample.")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    size_bytes = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="", help_text="What went wrong, if anything.")
    peaks = models.BinaryField(null=True, blank=True, editable=False,
                               help_text="The waveform: loudest sample of each channel per 50 ms.")
    deleted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"]), models.Index(fields=["account", "created_at"])]

    def __str__(self):
        return f"Recording of {self.call_id} ({self.status})"

    @property
    def playable(self) -> bool:
        return self.status == self.Status.READY
