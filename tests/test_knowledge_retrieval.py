"""Hybrid retrieval's ranking: the vector half, the word-pair text half, and how they are fused.

Chunks are stored with chosen embeddings and the query's embedding is fixed, so each test decides
exactly where a passage stands in the vector half; the text half runs on PostgreSQL as in production.
"""
import numpy as np
import pytest
from django.db import connection

from voicebots.knowledge import retrieval
from voicebots.knowledge.models import EMBEDDING_DIMENSION, Chunk, Knowledgebase
from voicebots.knowledge.retrieval import search

QUERY_VECTOR = np.eye(EMBEDDING_DIMENSION, dtype=np.float32)[0]


def vector_at(cosine: float, axis: int) -> list[float]:
    """A unit vector at `cosine` from QUERY_VECTOR, leaning towards its own `axis` (>= 1)."""
    vector = np.zeros(EMBEDDING_DIMENSION, dtype=np.float32)
    vector[0], vector[axis] = cosine, np.sqrt(1 - cosine**2)
    return vector.tolist()


@pytest.fixture
def document(api):
    return Knowledgebase.objects.create(
        account=api.account, name="shop.md", file="knowledge/shop.md", content_type="text/markdown",
        checksum="shop", status=Knowledgebase.Status.READY, serving_version=1)


@pytest.fixture
def store(document):
    """Store passages, each with its cosine to the query's embedding."""
    def store(*passages: tuple[str, float]) -> None:
        Chunk.objects.bulk_create(
            Chunk(account_id=document.account_id, document=document, version=1, live=True, index=number, text=text,
                  embedding=vector_at(cosine, number + 1), embedding_model="test")
            for number, (text, cosine) in enumerate(passages))
    return store


@pytest.fixture(autouse=True)
def fixed_query_embedding(monkeypatch):
    monkeypatch.setattr(retrieval, "embed_query", lambda query: QUERY_VECTOR)


OTHER_PASSAGES = [f"Aisle {n} holds garden tools, paint and light bulbs." for n in range(8)]


def texts(account, query, document, top_k=5):
    return [hit.text for hit in search(account.pk, query, [document.pk], top_k=top_k).hits]


def test_a_paraphrase_sharing_one_word_pair_finds_its_passage_through_the_text_half(api, document, store):
    target = "Key cutting is done at the customer desk on the first floor."
    # Eight passages nearer the query's embedding than the answer: by vector alone it would rank ninth.
    store(*[(text, 0.9 - n * 0.01) for n, text in enumerate(OTHER_PASSAGES)], (target, 0.5))

    assert texts(api.account, "Who does key cutting around here?", document)[0] == target
    # Without a shared pair of words the vector order stands.
    assert target not in texts(api.account, "Can I get spare keys made?", document)


def test_the_words_of_a_pair_must_be_next_to_each_other(api, document, store):
    target = "Key cutting is done at the customer desk on the first floor."
    scattered = "Cutting boards, key rings and picture frames are half price this week."
    store(*[(text, 0.9 - n * 0.01) for n, text in enumerate(OTHER_PASSAGES)], (scattered, 0.55), (target, 0.5))

    found = texts(api.account, "Who does key cutting around here?", document)

    # The scattered words earn no text credit: the passage stays ninth, behind the vector's nearest.
    assert found[0] == target and scattered not in found


def test_stop_words_between_the_words_of_a_pair_are_kept_as_a_gap(api, document, store):
    target = "The Pulse S blender weighs 2.4 kg."
    store(*[(text, 0.9 - n * 0.01) for n, text in enumerate(OTHER_PASSAGES)],
          ("The Pulse blender weighs 3.1 kg.", 0.6), (target, 0.5))

    # "s" is a stop word: 'pulse' and 'blender' are two positions apart in the query and in the target only.
    assert texts(api.account, "How heavy is the Pulse S blender?", document)[0] == target


def test_on_a_tie_the_nearer_chunk_leads(api, document, store):
    nearest = "Key cutting is done at the customer desk."
    wordier = "Key cutting while you wait: key cutting for every lock, and key cutting for cars."
    # The wordier passage is stored first and ranks first by its words, second by its embedding.
    store((wordier, 0.89), (nearest, 0.9), *[(text, 0.5) for text in OTHER_PASSAGES])

    assert texts(api.account, "Who does key cutting around here?", document)[:2] == [nearest, wordier]


def test_the_text_half_only_reranks_the_nearest_chunks(api, document, store, monkeypatch):
    monkeypatch.setattr(retrieval, "VECTOR_POOL", 20)
    target = "Key cutting is done at the customer desk on the first floor."
    others = [f"Aisle {n} holds garden tools, paint and light bulbs." for n in range(30)]
    store(*[(text, 0.9 - n * 0.01) for n, text in enumerate(others)], (target, 0.3))

    # 30 chunks are nearer than the answer: it is outside the pool of 20 the text half looks at.
    assert target not in texts(api.account, "Who does key cutting around here?", document)
    monkeypatch.setattr(retrieval, "VECTOR_POOL", 40)
    assert target in texts(api.account, "Who does key cutting around here?", document)


@pytest.mark.parametrize("query,expected", [
    ("How long is the Drift 3 cordless drill guaranteed for?",
     "'long' <3> 'drift' | 'drift' <-> '3' | '3' <-> 'cordless' | 'cordless' <-> 'drill' | 'drill' <-> 'guarante'"),
    ("Parking?", "'park'"),  # one word: that word
    ("O'Brien's C:\\Temp\\app.exe (a & b | !c)", "'o' <-> 'brien' | 'brien' <2> 'c' | 'c' <-> 'temp' | "
     "'temp' <-> 'app.exe' | 'app.exe' <2> 'b' | 'b' <-> 'c'"),  # quotes, backslashes, operators: plain words
    ("Is it?", ""),  # only stop words: nothing to match, and no error
])
def test_the_text_half_asks_for_each_pair_of_consecutive_words(db, query, expected):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT query::text FROM ({retrieval._PHRASES}) phrases", {"query": query})
        assert cursor.fetchone()[0] == expected


def test_a_query_of_stop_words_still_gets_the_nearest_passages(api, document, store):
    store(*[(text, 0.9 - n * 0.01) for n, text in enumerate(OTHER_PASSAGES)])

    assert texts(api.account, "Is it?", document) == OTHER_PASSAGES[:5]
