"""Embeddings from an OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, vLLM, Ollama, llama.cpp, TEI...),
so that ingestion runs at the speed of that endpoint rather than of a local model on the CPU.

Texts go in batches of `batch_size`, `concurrency` batches at a time, each retried on 429, 408/409, 5xx,
timeouts and lost connections (honouring the server's Retry-After, with backoff otherwise); other failures
are an EmbeddingError at once. Vectors must fit the knowledge table: with `send_dimensions` the request asks
for `dimension` (models such as text-embedding-3-* shorten their vectors), and any vector of another size is
refused with a sentence saying what to change.
"""
from __future__ import annotations

import base64
import binascii
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx2
import numpy as np
import openai

from voicebots.core.tls import CLIENT_CONTEXT
from voicebots.knowledge.embeddings import EmbeddingError

logger = logging.getLogger(__name__)

# Models whose vector size is known: native dimension, and whether they take the `dimensions` parameter.
KNOWN_MODELS = {"text-embedding-3-small": (1536, True), "text-embedding-3-large": (3072, True),
                "text-embedding-ada-002": (1536, False)}
RETRYABLE_STATUSES = frozenset({408, 409, 429})
MAX_RETRY_WAIT_S = 20.0


def dimension_problem(model: str, dimension: int, send_dimensions: bool) -> str | None:
    """Why `model` cannot fill a `dimension`-wide vector column, when that is known without asking it."""
    if model not in KNOWN_MODELS:
        return None  # a local server's model: checked on its first answer
    native, shortens = KNOWN_MODELS[model]
    if native == dimension or (shortens and send_dimensions):
        return None
    if shortens:
        return (f"{model} makes {native}-dimension vectors and the knowledge table stores {dimension}: "
                f"set EMBEDDING_SEND_DIMENSIONS=true so that it is asked for {dimension}.")
    return (f"{model} makes {native}-dimension vectors and cannot shorten them, but the knowledge table "
            f"stores {dimension}: use text-embedding-3-small or a model that makes {dimension}-dimension vectors.")


class OpenAIEmbedder:
    """The knowledge Embedder over an OpenAI-compatible endpoint. Thread-safe."""

    def __init__(self, *, api_key: str, base_url: str, model: str, dimension: int,
                 count_tokens: Callable[[str], int], send_dimensions: bool = True, batch_size: int = 64,
                 concurrency: int = 4, timeout_s: float = 10.0, max_retries: int = 3,
                 retry_base_delay_s: float = 0.5) -> None:
        self.name = self.name_of(model, dimension)
        self.dimension = dimension
        self.model = model
        self._count_tokens = count_tokens
        self._send_dimensions = send_dimensions
        self._batch_size = max(1, batch_size)
        self._concurrency = max(1, concurrency)
        self._max_retries = max_retries
        self._retry_base_delay_s = retry_base_delay_s
        self._client = openai.OpenAI(
            api_key=api_key, base_url=base_url, max_retries=0,  # retried here, batch by batch
            timeout=httpx2.Timeout(timeout_s, connect=min(timeout_s, 3.0)),
            http_client=openai.DefaultHttpxClient(
                verify=CLIENT_CONTEXT, limits=httpx2.Limits(max_connections=self._concurrency * 2,
                                                            max_keepalive_connections=self._concurrency * 2)),
        )
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    @staticmethod
    def name_of(model: str, dimension: int) -> str:
        """What chunks embedded by `model` are labelled with (a model shortened to other sizes differs)."""
        return f"{model}@{dimension}"

    def count_tokens(self, text: str) -> int:
        return self._count_tokens(text)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 rows of `dimension`, L2-normalised, in the order of `texts`. Raises EmbeddingError."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        batches = [list(texts[start:start + self._batch_size]) for start in range(0, len(texts), self._batch_size)]
        if len(batches) == 1:
            return self._embed_batch(batches[0])
        return np.vstack(list(self._workers().map(self._embed_batch, batches)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        self._client.close()

    def _workers(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="embeddings")
            return self._pool

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        # The API refuses an empty string; a space embeds as "nothing" just as well.
        inputs = [text if text.strip() else " " for text in texts]
        extra = {"dimensions": self.dimension} if self._send_dimensions else {}
        attempt = 0
        while True:
            try:
                # base64 asked for explicitly: the SDK then leaves it to us to decode straight into an array.
                response = self._client.embeddings.create(input=inputs, model=self.model, encoding_format="base64",
                                                          **extra)
                break
            except openai.APIError as error:
                wait = self._retry_wait(error, attempt)
                if wait is None:
                    raise EmbeddingError(self._describe(error, attempt)) from error
                logger.info("Embedding batch of %d failed (%s); retrying in %.2f s", len(inputs),
                            type(error).__name__, wait)
                time.sleep(wait)
                attempt += 1
        return self._vectors(response, len(inputs))

    def _retry_wait(self, error: openai.APIError, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when this failure is final."""
        if attempt >= self._max_retries:
            return None
        if isinstance(error, openai.APIStatusError):
            status = error.status_code
            if status not in RETRYABLE_STATUSES and status < 500:
                return None
            asked = _retry_after(error.response.headers)
            if asked is not None:
                return min(asked, MAX_RETRY_WAIT_S)
        elif not isinstance(error, openai.APIConnectionError):
            return None  # an unreadable answer does not get better by asking again
        backoff = self._retry_base_delay_s * 2 ** attempt
        return min(backoff * random.uniform(0.75, 1.0), MAX_RETRY_WAIT_S)

    def _describe(self, error: openai.APIError, attempt: int) -> str:
        tries = f" (after {attempt + 1} attempts)" if attempt else ""
        if isinstance(error, openai.APITimeoutError):
            return f"The embedding service did not answer in time{tries}."
        if isinstance(error, openai.APIConnectionError):
            return f"The embedding service could not be reached{tries}."
        if not isinstance(error, openai.APIStatusError):
            return "The embedding service sent an answer that could not be read."
        detail = str(error.body.get("message") or "") if isinstance(error.body, dict) else ""
        status = error.status_code
        if isinstance(error, openai.AuthenticationError):
            return "The embedding service rejected the API key."
        if isinstance(error, openai.NotFoundError):
            return f"The embedding model '{self.model}' was not found on the embedding service."
        if status == 400 and self._send_dimensions and "dimension" in detail.lower():
            return (f"The embedding service refused the `dimensions` parameter ({detail.rstrip('.')}). If "
                    f"'{self.model}' makes {self.dimension}-dimension vectors itself, set "
                    f"EMBEDDING_SEND_DIMENSIONS=false; otherwise use a model that can.")
        if status in RETRYABLE_STATUSES or status >= 500:
            return f"The embedding service kept failing (HTTP {status}){tries}."
        return f"The embedding service refused the request (HTTP {status}){': ' + detail if detail else '.'}"

    def _vectors(self, response, count: int) -> np.ndarray:
        data = sorted(response.data, key=lambda item: item.index)
        if len(data) != count:
            raise EmbeddingError(f"The embedding service answered {len(data)} vectors for {count} texts.")
        try:
            vectors = np.asarray([_decoded(item.embedding) for item in data], dtype=np.float32)
        except (TypeError, ValueError, binascii.Error) as error:
            raise EmbeddingError("The embedding service sent vectors that are not lists of numbers.") from error
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            size = vectors.shape[1] if vectors.ndim == 2 else "uneven"
            raise EmbeddingError(
                f"The embedding model '{self.model}' returned {size}-dimension vectors, but the knowledge table "
                f"stores {self.dimension}: use a model that makes {self.dimension}-dimension vectors, or one that "
                f"takes the `dimensions` parameter (EMBEDDING_SEND_DIMENSIONS=true).")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise EmbeddingError("The embedding service sent an empty or invalid vector.")
        return vectors / norms


def _decoded(embedding) -> np.ndarray | list:
    """A vector as base64 of little-endian float32s, or as a list (from a server that ignores the format)."""
    if isinstance(embedding, str):
        return np.frombuffer(base64.b64decode(embedding, validate=True), dtype="<f4")
    return embedding


def _retry_after(headers) -> float | None:
    """The server's own wait, from `retry-after-ms` or `retry-after` (seconds)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None
