"""Turns an uploaded document into searchable chunks: extract, chunk, embed, store.

Runs in a Celery worker. A replacement (a newer `version`) wins over older work, and the
switch from old chunks to new ones happens in one transaction, so readers never see a
half-processed document.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .chunking import chunk_sections, chunk_text_for_embedding
from voicebots.vendors.registry import ProviderUnavailable

from .embeddings import EmbeddingError, get_embedder
from .extraction import ExtractionError, extract
from .models import Chunk, Knowledgebase

logger = logging.getLogger(__name__)

EMBED_BATCH = 128  # chunks per round: a remote embedder sends them as requests side by side
# A document whose processing was cut off this many times (a worker killed each time) fails
# instead of taking the queue down again and again.
MAX_ATTEMPTS = 3
# A document still `processing` after this long was abandoned (a worker died mid-way).
STALE_AFTER = timedelta(minutes=10)


class Superseded(Exception):
    """A newer version of the document was uploaded (or it was deleted) while this one ran."""


def process(document_id: str, version: int) -> None:
    document = Knowledgebase.objects.filter(pk=document_id, version=version).first()
    if document is None:
        return  # deleted or replaced since it was queued
    if document.processing_attempts >= MAX_ATTEMPTS:
        _fail(document, version, "Processing of this file was interrupted repeatedly; it may be too large or damaged.")
        return
    now = timezone.now()
    Knowledgebase.objects.filter(pk=document.pk, version=version).update(
        processing_started_at=now, updated_at=now, status=Knowledgebase.Status.PROCESSING,
        processing_attempts=F("processing_attempts") + 1,
    )
    Chunk.objects.filter(document=document, version=version).delete()  # leftovers of a killed run
    try:
        _ingest(document, version)
    except Superseded:
        Chunk.objects.filter(document_id=document_id, version=version).delete()
    except ExtractionError as exc:
        _fail(document, version, str(exc))
    except (EmbeddingError, ProviderUnavailable) as exc:
        logger.warning("Embedding document %s failed: %s", document_id, exc.message)
        _fail(document, version, f"{exc.message} Upload the file again to retry.")
    except Exception:
        logger.exception("Processing document %s failed", document_id)
        _fail(document, version, "Processing failed because of an internal error; try uploading the file again.")


def _ingest(document: Knowledgebase, version: int) -> None:
    with document.file.open("rb") as handle:
        data = handle.read()
    embedder = get_embedder()
    chunks = chunk_sections(extract(data, document.content_type, name=document.name),
                            count_tokens=embedder.count_tokens)
    if not chunks:
        raise ExtractionError("No extractable text was found in the document.")
    _progress(document, version, done=0, total=len(chunks))
    batches = [chunks[start : start + EMBED_BATCH] for start in range(0, len(chunks), EMBED_BATCH)]

    def embed(batch):
        return embedder.embed([chunk_text_for_embedding(chunk) for chunk in batch])

    # The next batch is embedded while this one is stored: the database's index insertions and the
    # embedder (a model on other cores, or a remote endpoint) then work side by side.
    with ThreadPoolExecutor(1, thread_name_prefix="embed-ahead") as ahead:
        pending = ahead.submit(embed, batches[0])
        done = 0
        for number, batch in enumerate(batches):
            vectors = pending.result()
            if number + 1 < len(batches):
                pending = ahead.submit(embed, batches[number + 1])
            Chunk.objects.bulk_create(
                Chunk(account_id=document.account_id, document=document, version=version, index=chunk.index,
                      text=chunk.text, heading_path=list(chunk.heading_path), page=chunk.page,
                      token_count=chunk.token_count, embedding=vector, embedding_model=embedder.name)
                for chunk, vector in zip(batch, vectors)
            )
            done += len(batch)
            _progress(document, version, done=done, total=len(chunks))
    _publish(document, version, len(chunks))


def _progress(document: Knowledgebase, version: int, *, done: int, total: int) -> None:
    updated = Knowledgebase.objects.filter(pk=document.pk, version=version).update(
        chunks_done=done, chunks_total=total, updated_at=timezone.now()
    )
    if not updated:
        raise Superseded()


@transaction.atomic
def _publish(document: Knowledgebase, version: int, chunk_count: int) -> None:
    """Make this version's chunks the ones that answer, and drop the others, atomically."""
    current = Knowledgebase.objects.select_for_update().filter(pk=document.pk, version=version).first()
    if current is None:
        raise Superseded()
    Chunk.objects.filter(document=current).exclude(version=version).delete()
    Chunk.objects.filter(document=current, version=version).update(live=True)
    current.serving_version = version
    current.status = Knowledgebase.Status.READY
    current.error = ""
    current.chunk_count = chunk_count
    current.processed_at = timezone.now()
    current.processing_attempts = 0
    current.save(update_fields=["serving_version", "status", "error", "chunk_count", "processed_at",
                                "processing_attempts", "updated_at"])


def _fail(document: Knowledgebase, version: int, reason: str) -> None:
    Chunk.objects.filter(document=document, version=version).delete()
    Knowledgebase.objects.filter(pk=document.pk, version=version).update(
        status=Knowledgebase.Status.FAILED, error=reason, processing_attempts=0, updated_at=timezone.now()
    )


def stale_documents():
    """Documents left `processing` by a worker that died, or whose queue message was lost.

    Progress updates touch `updated_at` after every batch, so a long document that is still
    being embedded is never taken for abandoned.
    """
    cutoff = timezone.now() - STALE_AFTER
    return Knowledgebase.objects.filter(status=Knowledgebase.Status.PROCESSING, updated_at__lt=cutoff)
