"""The web server: Daphne processes (HTTP and WebSockets) sharing one listening socket.

One Python process runs on one core, and a live call costs CPU every 20 ms, so calls scale with processes:
the socket is opened here, once, and every Daphne child accepts connections from it (`--fd`). Each call is
one WebSocket, served start to end by the process that accepted it; nothing of a call is shared between
processes except through the database and Redis.
"""
from __future__ import annotations

import os
import socket
import sys

WEB_PROCESSES_DEFAULT = max(1, os.cpu_count() or 1)


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def daphne_command(sock: socket.socket) -> list[str]:
    """The command of one web process serving the app on `sock` (pass its fd to the child: `pass_fds`)."""
    return [sys.executable, "-m", "daphne", "--fd", str(sock.fileno()), "config.asgi:application"]
