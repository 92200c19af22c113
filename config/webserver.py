"""The web server: web processes (Daphne, HTTP and WebSockets) sharing one listening socket.

    python -m config.webserver [--host 0.0.0.0] [--port 8000] [--processes N]

One Python process runs on one core, and a live call costs CPU every 20 ms, so calls scale with processes:
the socket is opened here, once, and every web process accepts connections from it (`--fd`). Each call is one
WebSocket, served start to end by the process that accepted it; nothing of a call is shared between processes
except through the database and Redis (see voicebots/calls/live.py for reaching a call from another process).

This supervisor is the Procfile's `web` (one web process per core by default, WEB_PROCESSES to choose) and what
`manage.py run` starts. SIGTERM or SIGINT is passed on to the web processes, which drain their calls
(config/web_process.py); a web process that dies is started again.
"""
from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time

WEB_PROCESSES_DEFAULT = max(1, os.cpu_count() or 1)
RESTART_DELAY_S = 1.0
_PR_SET_PDEATHSIG = 1

logger = logging.getLogger("voicebots.webserver")


def die_with_parent() -> None:
    """Ask the kernel to send this process SIGTERM when its parent dies (Linux), so nothing is left running."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: stopping still reaches every process through the process group
        pass


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def web_process_command(sock: socket.socket, *, proxy_headers: bool = False) -> list[str]:
    """The command of one web process serving the app on `sock` (pass its fd to the child: `pass_fds`)."""
    return [sys.executable, "-m", "config.web_process", "--fd", str(sock.fileno()),
            *(["--proxy-headers"] if proxy_headers else []), "config.asgi:application"]


daphne_command = web_process_command  # its former name (tests/live_app.py)



class WebProcesses:
    """`count` web processes on `sock`, started again when one dies, stopped (drained) together."""

    def __init__(self, sock: socket.socket, count: int, *, env: dict | None = None, cwd=None,
                 proxy_headers: bool = False) -> None:
        self.sock, self.count, self.env, self.cwd = sock, count, env, cwd
        self.command = web_process_command(sock, proxy_headers=proxy_headers)
        self.processes: list[subprocess.Popen] = [self._start() for _ in range(count)]
        self.stopping = False

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen(self.command, env=self.env, cwd=self.cwd, pass_fds=(self.sock.fileno(),),
                                preexec_fn=die_with_parent)

    def restart_dead(self) -> list[int]:
        """Start a new web process for each one that exited; returns their exit codes."""
        codes = []
        for index, process in enumerate(self.processes):
            if process.poll() is not None and not self.stopping:
                codes.append(process.returncode)
                self.processes[index] = self._start()
        return codes

    def stop(self, timeout_s: float) -> None:
        """SIGTERM each (they drain their calls); whatever is still running after `timeout_s` is killed."""
        self.stopping = True
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def stop_timeout_s() -> float:
    """How long a web process may take to stop: its drain, the goodbyes, and a margin."""
    from django.conf import settings

    from voicebots.deployment.drain import GOODBYE_WAIT_S

    return float(settings.DRAIN_TIMEOUT_S) + GOODBYE_WAIT_S + 5


def trusts_proxy_headers() -> bool:
    from config.environment import parse_bool

    return parse_bool(os.environ.get("TRUST_PROXY_HEADERS") or "false")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 8000))
    parser.add_argument("--processes", type=int, default=int(os.environ.get("WEB_PROCESSES") or WEB_PROCESSES_DEFAULT))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings

    settings.DATABASE_URL  # noqa: B018  (checks the environment, and starts embedded servers if none are set)
    env = {**os.environ, "DATABASE_URL": settings.DATABASE_URL, "REDIS_URL": settings.REDIS_URL}
    sock = listening_socket(args.host, args.port)
    stopping: list[int] = []
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda received, _frame: stopping.append(received))
    web = WebProcesses(sock, max(1, args.processes), env=env, proxy_headers=trusts_proxy_headers())
    logger.info("%s web process(es) on %s:%s", len(web.processes), args.host, args.port)
    while not stopping:
        for code in web.restart_dead():
            logger.error("A web process exited (%s); started another", code)
        time.sleep(RESTART_DELAY_S)
    logger.info("Stopping: the web processes drain their calls (up to %g s)", stop_timeout_s())
    web.stop(stop_timeout_s())


if __name__ == "__main__":
    main()
