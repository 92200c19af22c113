"""Re-embed the chunks with the configured embedding provider: the one command to run after changing
EMBEDDING_PROVIDER or EMBEDDING_MODEL. Chunks made by another model are re-embedded (all of them with --all),
batch by batch, each batch committed: an interrupted run keeps its work and the next run goes on from there."""
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from voicebots.knowledge.chunking import chunk_text_for_embedding
from voicebots.knowledge.embeddings import EmbeddingError, get_embedder
from voicebots.knowledge.models import EMBEDDING_DIMENSION, Chunk
from voicebots.vendors.registry import ProviderUnavailable

BATCH = 256  # chunks per round; a remote embedder sends them as several requests at once


class _StoredChunk:
    """The fields chunk_text_for_embedding reads, from a stored chunk."""

    def __init__(self, chunk: Chunk) -> None:
        self.text = chunk.text
        self.heading_path = tuple(chunk.heading_path)


class Command(BaseCommand):
    help = "Re-embed all chunks (or only those made by another model) with the current embedding provider."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Also chunks already embedded by the current model.")

    def handle(self, *args, all=False, **options):
        try:
            embedder = get_embedder()
        except ProviderUnavailable as error:
            raise CommandError(error.message) from error
        if embedder.dimension != EMBEDDING_DIMENSION:
            raise CommandError(
                f"{embedder.name} makes {embedder.dimension}-dimension vectors but the chunk table stores "
                f"{EMBEDDING_DIMENSION}; change EMBEDDING_DIMENSION and migrate first."
            )
        chunks = Chunk.objects.order_by("id")
        if not all:
            chunks = chunks.exclude(embedding_model=embedder.name)
        total, done, last_id = chunks.count(), 0, 0
        while True:
            batch = list(chunks.filter(id__gt=last_id)[:BATCH])
            if not batch:
                break
            try:
                vectors = embedder.embed([chunk_text_for_embedding(_StoredChunk(c)) for c in batch])
            except EmbeddingError as error:
                raise CommandError(f"{error.message} {done} of {total} chunk(s) were re-embedded before; "
                                   f"run the command again to go on.") from error
            with transaction.atomic():
                for chunk, vector in zip(batch, vectors):
                    chunk.embedding, chunk.embedding_model = vector, embedder.name
                Chunk.objects.bulk_update(batch, ["embedding", "embedding_model"])
            done += len(batch)
            last_id = batch[-1].id
            self.stdout.write(f"{done}/{total} chunks re-embedded with {embedder.name}")
        self.stdout.write(self.style.SUCCESS(f"Done: {done} chunk(s) re-embedded with {embedder.name}."))
