"""Run the whole product in one command: web (HTTP + WebSockets), Celery worker and beat.

This process owns the embedded PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset
(settings start them on import) and hands their URLs to its children. Ctrl-C or SIGTERM stops
the children first and then the servers. The children, and this process, also ask the kernel
for SIGTERM when their parent dies, so killing the outer `make` leaves nothing running.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from config.webserver import WEB_PROCESSES_DEFAULT, daphne_command, listening_socket

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: Ctrl-C still stops everything through the process group
        pass


def _describe(database_url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = database_url.partition("://")
    credentials, at, location = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.split(':')[0]}{at}{location}" if at else database_url


class Command(BaseCommand):
    help = "Migrate, create the first account if needed, then run web + worker + beat until Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes.")
        parser.add_argument("--web-processes", type=int,
                            default=int(os.environ.get("WEB_PROCESSES") or WEB_PROCESSES_DEFAULT),
                            help="Daphne processes sharing the port (default: one per core).")

    def handle(self, *args, host, port, concurrency, web_processes, **options):
        die_with_parent()
        self.stopping = False
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)

        call_command("migrate", interactive=False, verbosity=0)
        call_command("bootstrap")

        env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL, "REDIS_URL": settings.REDIS_URL,
               "DJANGO_SETTINGS_MODULE": "config.settings"}
        python = sys.executable
        web_socket = listening_socket(host, port)
        commands = {
            **{f"web-{n}": daphne_command(web_socket) for n in range(1, max(1, web_processes) + 1)},
            "worker": [python, "-m", "celery", "-A", "config", "worker", "-l", "info",
                       "--concurrency", str(concurrency), "-n", "worker@%h"],
            "beat": [python, "-m", "celery", "-A", "config", "beat", "-l", "info",
                     "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"],
        }
        children = {
            name: subprocess.Popen(cmd, env=env, cwd=settings.BASE_DIR, preexec_fn=die_with_parent,
                                   pass_fds=(web_socket.fileno(),) if name.startswith("web") else ())
            for name, cmd in commands.items()
        }
        web_socket.close()  # the web processes hold it
        self.stdout.write(f"Database: {_describe(settings.DATABASE_URL)}  Redis: {settings.REDIS_URL}")
        self.stdout.write(self.style.SUCCESS(
            f"Voicebots is running on http://{host}:{port}/ (admin /admin/, API docs /api/docs/). Ctrl-C stops it."
        ))
        try:
            while not self.stopping:
                exited = [name for name, child in children.items() if child.poll() is not None]
                if exited:
                    self.stderr.write(f"{', '.join(exited)} exited; stopping the rest.")
                    break
                time.sleep(0.3)
        finally:
            self._stop(children)

    def _request_stop(self, *_):
        self.stopping = True

    def _stop(self, children: dict[str, subprocess.Popen]) -> None:
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.stdout.write("Stopped.")
