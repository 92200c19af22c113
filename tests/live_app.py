"""The product's web server in a process of its own (Daphne serving the real ASGI app, as `manage.py run` does) on
the test database and Redis, for clients that need a real server: a real browser, a real WebSocket client.

    with LiveApp({"DEEPGRAM_BASE_URL": ...}) as app:
        app.url  # http://127.0.0.1:<port>

Data the server should see must be committed (`django_db(transaction=True)`).
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.db import connection

from config.webserver import daphne_command, listening_socket

ROOT = Path(__file__).resolve().parent.parent


def tests_database_url() -> str:
    """The URL of the database the tests run on (the embedded server's `?host=` kept)."""
    return urlunsplit(urlsplit(settings.DATABASE_URL)._replace(path=f"/{connection.settings_dict['NAME']}"))


class LiveApp:
    def __init__(self, environment: dict[str, str] | None = None) -> None:
        self.environment = environment or {}
        self.process: subprocess.Popen | None = None
        self.log = tempfile.TemporaryFile()

    def __enter__(self) -> LiveApp:
        sock = listening_socket("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        env = {**os.environ, "DATABASE_URL": tests_database_url(), "REDIS_URL": settings.REDIS_URL,
               "PUBLIC_BASE_URL": self.url, "SECRET_KEY": settings.SECRET_KEY, "DEBUG": "false",
               "LOG_LEVEL": "WARNING", "DB_POOL": "false", **self.environment}
        self.process = subprocess.Popen(daphne_command(sock), cwd=ROOT, env=env, pass_fds=(sock.fileno(),),
                                        stdout=subprocess.DEVNULL, stderr=self.log)
        sock.close()  # the child holds it
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"The web server did not start:\n{self.output()}")

    def output(self) -> str:
        """What the server wrote to stderr so far (its warnings and errors)."""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def __exit__(self, *exc_info) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
