"""Benchmark of ingestion with an OpenAI-compatible embedding endpoint (EMBEDDING_PROVIDER=openai).

    .venv/bin/python -m bench.embeddings [--quick] [--batch-ms 50]

The endpoint is the test fake of `/v1/embeddings` on 127.0.0.1 (the real `openai` SDK talks to it), in a
process of its own, answering each request after `--batch-ms` milliseconds, like a hosted or GPU-served model's
time per batch; its vectors are word hashes, made in well under a millisecond. Documents (Markdown handbooks and a PDF catalogue, the
generator of `bench.knowledge`) go through the real pipeline, `processing.process()`: extraction, chunking,
embedding in batches sent side by side, storage with the HNSW index in place. Runs in `voicebots_bench`.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time

from bench.knowledge import (
    SEED,
    TextGenerator,
    create_bench_account,
    delete_previous_runs,
    ingest,
    markdown_document,
    pdf_document,
    use_bench_database,
)

TARGET_CHUNKS_PER_S = 500.0
FULL = {"markdown_files": 8, "sections_per_file": 40, "pdf_pages": 60}
QUICK = {"markdown_files": 3, "sections_per_file": 20, "pdf_pages": 20}


def serve_endpoint(batch_s: float, connection) -> None:
    """The fake endpoint in this (child) process until the parent closes the pipe: its port, then its stats."""
    from tests.fakes.openai_server import FakeOpenAI

    fake = FakeOpenAI(embedding_delay_s=batch_s).start_in_thread()
    connection.send((fake.url, fake.api_key))
    connection.recv()  # asked for the stats at the end
    connection.send({"requests": len(fake.embedding_requests), "max_concurrent": fake.max_concurrent_embeddings,
                     "cpu_s": time.process_time()})
    fake.stop()


class Endpoint:
    def __init__(self, batch_s: float) -> None:
        self._connection, child = multiprocessing.get_context("spawn").Pipe()
        self._process = multiprocessing.get_context("spawn").Process(target=serve_endpoint, args=(batch_s, child),
                                                                     daemon=True)
        self._process.start()
        self.url, self.api_key = self._connection.recv()

    def stop(self) -> dict:
        self._connection.send("stats")
        stats = self._connection.recv()
        self._process.join(5)
        return stats


def run(scale: dict, batch_s: float) -> dict:
    from django.conf import settings
    from django.test import override_settings

    from voicebots.knowledge import filetypes
    from voicebots.knowledge.embeddings import get_embedder

    delete_previous_runs()
    generator = TextGenerator(SEED + 1)
    account = create_bench_account("embeddings")
    markdown = [(f"handbook-{n + 1}.md", filetypes.MARKDOWN, markdown_document(generator, scale["sections_per_file"]))
                for n in range(scale["markdown_files"])]
    pdf_bytes, pages = pdf_document(generator, scale["pdf_pages"])
    endpoint = Endpoint(batch_s)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-embeddings-media-") as media, override_settings(
                MEDIA_ROOT=media, EMBEDDING_PROVIDER="openai", EMBEDDING_BASE_URL=endpoint.url,
                EMBEDDING_API_KEY=endpoint.api_key, EMBEDDING_MODEL="text-embedding-3-small"):
            embedder = get_embedder()
            warm_up = settings.EMBEDDING_BATCH_SIZE * settings.EMBEDDING_CONCURRENCY
            embedder.embed(["warm the connections"] * warm_up)
            load_before = os.getloadavg()[0]
            cpu_before = time.process_time()
            markdown_run = ingest(account, markdown)
            pdf_run = ingest(account, [("catalogue.pdf", filetypes.PDF, pdf_bytes)])
            cpu = time.process_time() - cpu_before
            load_after = os.getloadavg()[0]
            texts = [f"Passage {number}: opening hours, parking and payments." for number in range(2048)]
            started = time.perf_counter()
            embedder.embed(texts)
            embed_only = len(texts) / (time.perf_counter() - started)
    finally:
        stats = endpoint.stop()
    requests = stats["requests"] - (warm_up + settings.EMBEDDING_BATCH_SIZE - 1) // settings.EMBEDDING_BATCH_SIZE \
        - (len(texts) + settings.EMBEDDING_BATCH_SIZE - 1) // settings.EMBEDDING_BATCH_SIZE
    for measured in (markdown_run, pdf_run):
        del measured["documents"]
    chunks = markdown_run["chunks"] + pdf_run["chunks"]
    seconds = markdown_run["seconds"] + pdf_run["seconds"]
    return {"batch_ms": batch_s * 1000, "batch_size": settings.EMBEDDING_BATCH_SIZE,
            "concurrency": settings.EMBEDDING_CONCURRENCY, "markdown": markdown_run, "pdf": {**pdf_run, "pages": pages},
            "chunks": chunks, "seconds": seconds, "chunks_per_s": chunks / seconds, "requests": requests,
            "max_concurrent_requests": stats["max_concurrent"], "embed_only_chunks_per_s": embed_only,
            "pipeline_cpu_ms_per_chunk": cpu * 1000 / chunks, "load_average": (load_before, load_after)}


def report(results: dict) -> str:
    markdown, pdf = results["markdown"], results["pdf"]
    rate = results["chunks_per_s"]
    return "\n".join([
        f"Ingestion with an OpenAI-compatible embedding endpoint answering each batch in {results['batch_ms']:.0f} ms "
        f"(batches of {results['batch_size']}, {results['concurrency']} at a time)",
        f"   {'documents':<14}{'chunks':>8}{'seconds':>9}{'chunks/s':>10}",
        f"   {'Markdown x' + str(markdown['files']):<14}{markdown['chunks']:>8}{markdown['seconds']:>9.2f}"
        f"{markdown['chunks_per_s']:>10.0f}",
        f"   {'PDF, ' + str(pdf['pages']) + ' pages':<14}{pdf['chunks']:>8}{pdf['seconds']:>9.2f}"
        f"{pdf['chunks_per_s']:>10.0f}",
        f"   {results['requests']} embedding requests, at most {results['max_concurrent_requests']} at once; "
        f"embedding alone (2,048 texts): {results['embed_only_chunks_per_s']:.0f} chunks/s",
        f"   CPU of this process (extraction, chunking, client, ORM) {results['pipeline_cpu_ms_per_chunk']:.2f} ms "
        f"a chunk, besides PostgreSQL's; load average {results['load_average'][0]:.2f} -> "
        f"{results['load_average'][1]:.2f}",
        f"   {'PASS' if rate >= TARGET_CHUNKS_PER_S else 'MISS'} ingestion through process(): {rate:.0f} chunks/s "
        f"(target >= {TARGET_CHUNKS_PER_S:.0f})",
    ])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch-ms", type=float, default=50.0, help="the endpoint's time per request")
    args = parser.parse_args(argv)
    use_bench_database()
    results = run(QUICK if args.quick else FULL, args.batch_ms / 1000)
    print(report(results), flush=True)
    return results


if __name__ == "__main__":
    main()
