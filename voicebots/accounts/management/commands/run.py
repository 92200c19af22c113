"""Run the whole product in one command: web (HTTP + WebSockets), Celery worker and beat.

This process owns the embedded PostgreSQL and Redis when DATABASE_URL / REDIS_URL are unset
(settings start them on import) and hands their URLs to its children. Ctrl-C or SIGTERM stops
the children first (the web processes drain their calls) and then the servers. The children, and
this process, also ask the kernel for SIGTERM when their parent dies, so killing the outer `make`
leaves nothing running.

Start-up is what the user waits for: the web processes start first, alone on the CPU, and the banner
comes when they answer; Django's system checks (they import every view, ~1 s of CPU), the
worker and beat come after them.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from config.webserver import WEB_PROCESSES_DEFAULT, WebProcesses, die_with_parent, listening_socket, stop_timeout_s

READY_TIMEOUT_S = 60.0
CHILD_STOP_TIMEOUT_S = 15.0


def _describe(database_url: str) -> str:
    """The URL without its password."""
    scheme, sep, rest = database_url.partition("://")
    credentials, at, location = rest.rpartition("@")
    return f"{scheme}{sep}{credentials.split(':')[0]}{at}{location}" if at else database_url


def browsable(host: str) -> str:
    """An address of this machine that reaches `host` (a wildcard address is reached on the loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def answers_http(host: str, port: int) -> bool:
    """Whether a web process answers on host:port (a request to the health check, with its reply read)."""
    try:
        with socket.create_connection((browsable(host), port), 1) as sock:
            sock.settimeout(2)
            sock.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
            return sock.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


class Command(BaseCommand):
    help = "Migrate, create the first account if needed, then run web + worker + beat until Ctrl-C."
    requires_system_checks = []  # run below, while the web processes start

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--concurrency", type=int, default=2, help="Celery worker processes.")
        parser.add_argument("--web-processes", type=int,
                            default=int(os.environ.get("WEB_PROCESSES") or WEB_PROCESSES_DEFAULT),
                            help="Web processes sharing the port (default: one per core).")

    def handle(self, *args, host, port, concurrency, web_processes, **options):
        started = time.monotonic()
        die_with_parent()
        self.stopping = False
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTERM, self._request_stop)

        call_command("migrate", interactive=False, verbosity=0)
        call_command("bootstrap", site_url=f"http://{browsable(host)}:{port}")

        env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL, "REDIS_URL": settings.REDIS_URL,
               "DJANGO_SETTINGS_MODULE": "config.settings"}
        python = sys.executable
        web_socket = listening_socket(host, port)
        web = WebProcesses(web_socket, max(1, web_processes), env=env, cwd=settings.BASE_DIR)
        web_socket.close()  # the web processes hold it
        self.stdout.write(f"Database: {_describe(settings.DATABASE_URL)}  Redis: {settings.REDIS_URL}")
        self.stdout.flush()
        others = {}
        try:
            if self._wait_until_serving(host, port, web):
                self.stdout.write(self.style.SUCCESS(
                    f"Voicebots is running on http://{browsable(host)}:{port}/ (admin /admin/, API docs /api/docs/), "
                    f"ready in {time.monotonic() - started:.1f} s. Ctrl-C stops it."))
                self.stdout.flush()
                call_command("check")  # raises (and everything stops) on an error
                others = {
                    "worker": subprocess.Popen(
                        [python, "-m", "celery", "-A", "config", "worker", "-l", "info", "--concurrency",
                         str(concurrency), "-n", "worker@%h", "--without-mingle", "--without-gossip"],
                        env=env, cwd=settings.BASE_DIR, preexec_fn=die_with_parent),
                    "beat": subprocess.Popen(
                        [python, "-m", "celery", "-A", "config", "beat", "-l", "info",
                         "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"],
                        env=env, cwd=settings.BASE_DIR, preexec_fn=die_with_parent),
                }
            while not self.stopping:
                exited = [name for name, child in others.items() if child.poll() is not None]
                exited += [f"web-{n}" for n, child in enumerate(web.processes, 1) if child.poll() is not None]
                if exited:
                    self.stderr.write(f"{', '.join(exited)} exited; stopping the rest.")
                    break
                time.sleep(0.3)
        finally:
            self._stop(web, others)

    def _wait_until_serving(self, host: str, port: int, web: WebProcesses) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.stopping and time.monotonic() < deadline:
            if any(child.poll() is not None for child in web.processes):
                return False  # the loop below reports it
            if answers_http(host, port):
                return True
            time.sleep(0.05)
        return not self.stopping

    def _request_stop(self, *_):
        self.stopping = True

    def _stop(self, web: WebProcesses, others: dict[str, subprocess.Popen]) -> None:
        for child in others.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        web.stop(stop_timeout_s())  # the web processes drain their calls
        deadline = time.monotonic() + CHILD_STOP_TIMEOUT_S
        for child in others.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.stdout.write("Stopped.")
