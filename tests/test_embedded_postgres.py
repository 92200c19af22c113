"""The embedded PostgreSQL's settings: sized from the machine's memory and applied to the running server."""
import os

import pytest
from django.db import connection

from config import embedded

GB = 2**30


@pytest.mark.parametrize("memory,shared_buffers,maintenance", [
    (1 * GB, "128MB", "64MB"),  # a small machine keeps PostgreSQL's defaults
    (4 * GB, "512MB", "256MB"),
    (64 * GB, "1024MB", "1024MB"),  # capped: the rest is for the web server, workers and models
])
def test_settings_follow_the_machines_memory_within_bounds(memory, shared_buffers, maintenance):
    settings = embedded.postgres_settings(memory)

    assert settings["shared_buffers"] == shared_buffers
    assert settings["maintenance_work_mem"] == maintenance
    assert settings["autovacuum_work_mem"] == "64MB"
    assert settings["jit"] == "off"


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL")), reason="an external server keeps its own settings")
def test_the_embedded_server_runs_with_them(db):
    wanted = embedded.postgres_settings(embedded.physical_memory())
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('jit')")
        assert cursor.fetchone()[0] == "off"
        for name in ("shared_buffers", "maintenance_work_mem", "effective_cache_size"):
            cursor.execute("SELECT pg_size_bytes(current_setting(name)) = pg_size_bytes(%s), pending_restart "
                           "FROM pg_settings WHERE name = %s", [wanted[name], name])
            applied, pending = cursor.fetchone()
            # shared_buffers waits for the server's next start if another process was using the server.
            assert applied or (name in embedded.RESTART_SETTINGS and pending), name
