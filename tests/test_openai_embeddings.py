"""Knowledge embeddings from an OpenAI-compatible endpoint: the real `openai` SDK against the local fake's
`/v1/embeddings` (batching, concurrency, retries, timeouts, vector sizes), the ingestion pipeline and search
on it, and `manage.py reembed` after a change of provider."""
from __future__ import annotations

import time
from io import StringIO

import numpy as np
import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command

from tests.fakes.openai_server import Failure, FakeOpenAI, hashed_embedding
from voicebots.knowledge.embeddings import EmbeddingError, get_embedder, wordpiece_token_counter
from voicebots.knowledge.models import Chunk
from voicebots.providers.openai_embeddings import OpenAIEmbedder

FAQ = b"""# Smile Dental FAQ

## Opening hours
The clinic opens at 8am on weekdays and closes at 6pm. On Saturdays we open from 9am to 1pm.

## Parking
Free parking is available behind the building, entrance on Elm Street.

## Payments
We accept cash, debit cards and all major credit cards. Payment plans exist for implants.
"""


@pytest.fixture
def fake():
    server = FakeOpenAI().start_in_thread()
    yield server
    server.stop()


def embedder(fake: FakeOpenAI, **overrides) -> OpenAIEmbedder:
    options = {"api_key": fake.api_key, "base_url": fake.url, "model": "text-embedding-3-small", "dimension": 384,
               "count_tokens": wordpiece_token_counter(), "batch_size": 64, "concurrency": 4, "timeout_s": 5.0,
               "max_retries": 3, "retry_base_delay_s": 0.01, **overrides}
    return OpenAIEmbedder(**options)


def test_texts_go_in_batches_at_once_and_come_back_in_order(fake):
    fake.embedding_delay_s = 0.2
    texts = [f"Question {number} about parking and opening hours" for number in range(150)]
    client = embedder(fake)

    started = time.monotonic()
    vectors = client.embed(texts)
    elapsed = time.monotonic() - started

    assert vectors.shape == (150, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, np.vstack([hashed_embedding(text, 384) for text in texts]), atol=1e-6)
    sizes = sorted(len(request.body["input"]) for request in fake.embedding_requests)
    assert sizes == [22, 64, 64]
    assert fake.max_concurrent_embeddings == 3 and elapsed < 0.55  # three batches of 0.2 s side by side
    body = fake.embedding_requests[0].body
    assert body["model"] == "text-embedding-3-small" and body["dimensions"] == 384
    assert body["encoding_format"] == "base64"  # compact, and decoded straight into an array
    assert fake.embedding_requests[0].headers["authorization"] == f"Bearer {fake.api_key}"
    assert client.name == "text-embedding-3-small@384"
    assert client.count_tokens("hello world") == 2
    assert client.embed([]).shape == (0, 384)


def test_a_server_that_ignores_the_encoding_format_is_understood(fake):
    fake.honour_encoding_format = False

    vectors = embedder(fake).embed(["Free parking", "Opening hours"])

    np.testing.assert_allclose(vectors[1], hashed_embedding("Opening hours", 384), atol=1e-6)


def test_rate_limits_and_server_errors_are_retried(fake):
    fake.fail_embeddings(Failure(429, retry_after_ms=30), Failure(500), Failure(503))

    started = time.monotonic()
    vectors = embedder(fake).embed(["Free parking behind the building"])

    assert len(fake.embedding_requests) == 4
    assert time.monotonic() - started >= 0.03  # the server's Retry-After was honoured
    np.testing.assert_allclose(vectors[0], hashed_embedding("Free parking behind the building", 384), atol=1e-6)


def test_a_service_that_keeps_failing_is_a_clear_error(fake):
    fake.fail_embeddings(*[Failure(503)] * 4)

    with pytest.raises(EmbeddingError) as caught:
        embedder(fake).embed(["text"])

    assert caught.value.message == "The embedding service kept failing (HTTP 503) (after 4 attempts)."
    assert len(fake.embedding_requests) == 4


def test_a_rejected_key_is_not_retried(fake):
    with pytest.raises(EmbeddingError) as caught:
        embedder(fake, api_key="wrong").embed(["text"])

    assert caught.value.message == "The embedding service rejected the API key."
    assert len(fake.embedding_requests) == 1


def test_a_stalled_request_times_out_and_is_retried(fake):
    fake.fail_embeddings(Failure(stall_s=2.0))
    client = embedder(fake, timeout_s=0.3)

    started = time.monotonic()
    vectors = client.embed(["text"])

    assert vectors.shape == (1, 384) and len(fake.embedding_requests) == 2
    assert time.monotonic() - started < 1.5
    fake.fail_embeddings(Failure(stall_s=2.0), Failure(stall_s=2.0))
    with pytest.raises(EmbeddingError, match="did not answer in time"):
        embedder(fake, timeout_s=0.3, max_retries=1).embed(["text"])


def test_vectors_of_another_size_are_refused_with_what_to_change(fake):
    with pytest.raises(EmbeddingError) as caught:
        embedder(fake, send_dimensions=False).embed(["text"])  # text-embedding-3-small's own 1536

    assert "returned 1536-dimension vectors, but the knowledge table stores 384" in caught.value.message
    native = embedder(fake, model="all-minilm", send_dimensions=False).embed(["text"])  # a 384-wide local model
    assert native.shape == (1, 384) and "dimensions" not in fake.embedding_requests[-1].body


def test_a_model_that_refuses_the_dimensions_parameter_says_so(fake):
    with pytest.raises(EmbeddingError) as caught:
        embedder(fake, model="text-embedding-ada-002").embed(["text"])

    assert "refused the `dimensions` parameter" in caught.value.message
    assert "EMBEDDING_SEND_DIMENSIONS=false" in caught.value.message
    assert len(fake.embedding_requests) == 1


def test_an_empty_text_is_sent_as_a_space(fake):
    embedder(fake).embed(["", "parking"])

    assert fake.embedding_requests[0].body["input"] == [" ", "parking"]


# --- Through the pipeline ---------------------------------------------------------------------------------


@pytest.fixture
def openai_embeddings(settings, fake):
    settings.EMBEDDING_PROVIDER = "openai"
    settings.EMBEDDING_BASE_URL, settings.EMBEDDING_API_KEY = fake.url, fake.api_key
    settings.EMBEDDING_MODEL = "text-embedding-3-small"
    return fake


def upload(api, django_capture_on_commit_callbacks, name: str, content: bytes) -> dict:
    with django_capture_on_commit_callbacks(execute=True):
        response = api.upload("Knowledgebase/", name, content)
    assert response.status_code == 201, response.json()
    return api.get(f"Knowledgebase/{response.json()['id']}").json()


def test_documents_are_embedded_and_searched_through_the_endpoint(api, openai_embeddings,
                                                                  django_capture_on_commit_callbacks):
    document = upload(api, django_capture_on_commit_callbacks, "faq.md", FAQ)

    assert document["status"] == "ready", document
    chunks = Chunk.objects.filter(document_id=document["id"])
    assert {chunk.embedding_model for chunk in chunks} == {"text-embedding-3-small@384"}
    assert openai_embeddings.embedded_inputs >= document["chunk_count"]
    found = api.post("Knowledgebase/search", {"query": "Where is the free parking?"}).json()["results"]
    assert "Elm Street" in found[0]["text"]  # the query went through the same endpoint
    assert openai_embeddings.embedding_requests[-1].body["input"] == ["Where is the free parking?"]


def test_an_embedding_failure_fails_the_document_with_the_reason(api, openai_embeddings, settings,
                                                                 django_capture_on_commit_callbacks):
    settings.EMBEDDING_API_KEY = "revoked"

    document = upload(api, django_capture_on_commit_callbacks, "faq.md", FAQ)

    assert document["status"] == "failed"
    assert document["error"] == "The embedding service rejected the API key. Upload the file again to retry."
    assert not Chunk.objects.filter(document_id=document["id"]).exists()
    searched = api.post("Knowledgebase/search", {"query": "parking"})
    assert searched.status_code == 503
    assert searched.json()["error"] == ("The question could not be embedded: The embedding service rejected the "
                                        "API key.")


def test_reembed_moves_every_chunk_to_the_new_provider(api, settings, fake, django_capture_on_commit_callbacks):
    settings.EMBEDDING_PROVIDER = "minilm"
    first = upload(api, django_capture_on_commit_callbacks, "faq.md", FAQ)
    second = upload(api, django_capture_on_commit_callbacks, "more.md", b"# Implants\n\nImplants take two visits.")
    total = first["chunk_count"] + second["chunk_count"]
    assert set(Chunk.objects.values_list("embedding_model", flat=True)) == {"all-MiniLM-L6-v2-int8"}
    settings.EMBEDDING_PROVIDER, settings.EMBEDDING_BASE_URL, settings.EMBEDDING_API_KEY = "openai", fake.url, fake.api_key
    warnings = [message for message in run_checks(databases=["default"]) if message.id == "vendors.W002"]
    assert len(warnings) == 1 and f"({total} by all-MiniLM-L6-v2-int8)" in warnings[0].msg
    out = StringIO()

    call_command("reembed", stdout=out)

    assert set(Chunk.objects.values_list("embedding_model", flat=True)) == {"text-embedding-3-small@384"}
    chunk = Chunk.objects.filter(text__contains="Elm Street").get()
    assert np.dot(np.asarray(chunk.embedding), get_embedder().embed([chunk.text])[0]) > 0.5
    assert f"Done: {total} chunk(s) re-embedded with text-embedding-3-small@384." in out.getvalue()
    again = StringIO()
    call_command("reembed", stdout=again)
    assert "Done: 0 chunk(s)" in again.getvalue()  # nothing left to move
    call_command("reembed", "--all", stdout=again)
    assert f"Done: {total} chunk(s)" in again.getvalue()
    assert not [message for message in run_checks(databases=["default"]) if message.id == "vendors.W002"]


def test_reembed_stops_with_a_clear_error_and_keeps_what_it_did(api, settings, fake,
                                                                 django_capture_on_commit_callbacks):
    settings.EMBEDDING_PROVIDER = "minilm"
    upload(api, django_capture_on_commit_callbacks, "faq.md", FAQ)
    settings.EMBEDDING_PROVIDER, settings.EMBEDDING_BASE_URL, settings.EMBEDDING_API_KEY = "openai", fake.url, "bad"

    with pytest.raises(CommandError, match="rejected the API key"):
        call_command("reembed", stdout=StringIO())

    assert set(Chunk.objects.values_list("embedding_model", flat=True)) == {"all-MiniLM-L6-v2-int8"}
