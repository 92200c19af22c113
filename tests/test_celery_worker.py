"""Processing through a real Celery worker process, over the real (embedded) Redis broker."""
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection

from voicebots.knowledge.models import Knowledgebase

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    """The configured database URL, pointed at the test database."""
    return urlunsplit(urlsplit(settings.DATABASE_URL)._replace(path="/" + connection.settings_dict["NAME"]))


@pytest.fixture
def worker(transactional_db):
    """A worker on a queue of its own, so a development worker sharing the broker cannot take its tasks."""
    from config import celery_app

    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
           "MEDIA_ROOT": str(settings.MEDIA_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "--pool", "solo",
         "-l", "warning", "-n", f"{queue}@%h"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = queue
    yield process
    celery_app.conf.task_default_queue = "celery"
    process.terminate()
    process.communicate(timeout=30)


def test_an_uploaded_document_is_ready_within_seconds_through_a_real_worker(api, worker):
    started = time.monotonic()
    response = api.upload("Knowledgebase/", "faq.md", b"# Hours\n\nWe open at nine and close at five.")
    assert response.status_code == 201
    document_id = response.json()["id"]
    deadline = started + 60
    while time.monotonic() < deadline:
        document = Knowledgebase.objects.get(pk=document_id)
        if document.status != "processing":
            break
        time.sleep(0.2)
    assert document.status == "ready", (document.status, document.error)
    assert document.chunk_count >= 1
    results = api.post("Knowledgebase/search", {"query": "When do you open?"}).json()["results"]
    assert "nine" in results[0]["text"]
