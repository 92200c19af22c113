import uuid

from django.db import models

from voicebots.accounts.models import Account


def document_path(document, filename: str) -> str:
    # The stored name never contains the user's file name: that one is kept in `name`.
    return f"knowledge/{document.account_id}/{uuid.uuid4().hex}"


class Knowledgebase(models.Model):
    """One uploaded document the bots it is attached to answer from."""

    class Status(models.TextChoices):
        PROCESSING = "processing"
        READY = "ready"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="documents")
    name = models.CharField(max_length=255, help_text="The uploaded file's name.")
    file = models.FileField(upload_to=document_path, max_length=255)
    size = models.PositiveBigIntegerField(default=0)
    content_type = models.CharField(max_length=128)
    checksum = models.CharField(max_length=64, db_index=True, help_text="sha256 of the file.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PROCESSING)
    error = models.TextField(blank=True, default="")
    chunk_count = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    # Bumped on every replacement; processing of an older version gives way to a newer one.
    version = models.PositiveIntegerField(default=1)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "checksum"]), models.Index(fields=["account", "-created_at"])]
        verbose_name = "document"

    def __str__(self):
        return self.name
