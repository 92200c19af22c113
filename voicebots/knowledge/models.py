import uuid

from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.db import models
from pgvector.django import HnswIndex, VectorField

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
    # The version whose chunks answer questions. It changes in one transaction when a new
    # version is fully embedded, so readers see the old chunks until the new ones are ready.
    serving_version = models.PositiveIntegerField(null=True, blank=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processing_attempts = models.PositiveSmallIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "checksum"]), models.Index(fields=["account", "-created_at"])]
        verbose_name = "document"

    def __str__(self):
        return self.name


EMBEDDING_DIMENSION = 384
SEARCH_CONFIG = "english"


class Chunk(models.Model):
    """A passage of a document with its embedding and full-text vector."""

    id = models.BigAutoField(primary_key=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey(Knowledgebase, on_delete=models.CASCADE, related_name="chunks")
    version = models.PositiveIntegerField()
    # True for the chunks of the document's serving version: the only ones search reads.
    live = models.BooleanField(default=False)
    index = models.PositiveIntegerField()
    text = models.TextField()
    heading_path = models.JSONField(default=list, blank=True)
    page = models.PositiveIntegerField(null=True, blank=True)
    token_count = models.PositiveIntegerField(default=0)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSION)
    embedding_model = models.CharField(max_length=100)
    search_vector = models.GeneratedField(
        expression=SearchVector("text", config=SEARCH_CONFIG),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        ordering = ["document", "version", "index"]
        indexes = [
            HnswIndex(name="chunk_embedding_hnsw", fields=["embedding"], m=16, ef_construction=64,
                      opclasses=["vector_cosine_ops"]),
            GinIndex(name="chunk_search_gin", fields=["search_vector"]),
            models.Index(name="chunk_document_version", fields=["document", "version"]),
            models.Index(name="chunk_account_document_live", fields=["account", "document", "live"]),
        ]

    def __str__(self):
        return f"{self.document_id} #{self.index}"
