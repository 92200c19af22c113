"""A real local HTTP server to act as a function (webhook) handler in tests.

    with FunctionHandlerFake() as handler:          # or `async with`, or start_in_thread()/stop()
        handler.reply("/book", Reply.json({"booked": True}, delay_s=0.3))
        ... POST handler.url_for("/book") ...
        handler.requests[0].json()

It runs in a daemon thread (one thread per request), so sync and async tests can both call it. Paths
without a scripted reply get `default_reply`. Pass `tls=` (see self_signed_tls) to serve https.
"""
from __future__ import annotations

import datetime
import json
import select
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.virtual_time import OUTSIDE_WORK

SHUTDOWN_POLL_S = 0.02


def self_signed_tls(hostname: str = "localhost") -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a fresh certificate for `hostname`, and a client context that trusts only it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as directory:  # load_cert_chain only reads files
        cert_path, key_path = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_path.write_bytes(certificate_pem)
        key_path.write_bytes(key_pem)
        server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cadata=certificate_pem.decode())
    return server, client


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    @classmethod
    def json(cls, payload: Any, *, status: int = 200, delay_s: float = 0.0) -> Reply:
        return cls(status, json.dumps(payload, indent=2).encode(), delay_s=delay_s)

    @classmethod
    def text(cls, text: str, *, status: int = 200, delay_s: float = 0.0) -> Reply:
        return cls(status, text.encode(), "text/plain; charset=utf-8", delay_s=delay_s)

    @classmethod
    def error(cls, status: int = 500, text: str = "Internal Server Error") -> Reply:
        return cls.text(text, status=status)

    @classmethod
    def sleep(cls, seconds: float) -> Reply:
        """Answer only after `seconds` (to trigger the caller's timeout)."""
        return cls.json({"late": True}, delay_s=seconds)

    @classmethod
    def redirect(cls, location: str, *, status: int = 307) -> Reply:
        return cls(status, b"", "text/plain", {"Location": location})


@dataclass
class RecordedHTTPRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    received_at: float

    def json(self) -> Any:
        return json.loads(self.body)


class _WatchedHTTPServer(ThreadingHTTPServer):
    """Tells virtual time (tests/virtual_time.py) of each connection, from before it is accepted (when its
    request may already be waiting) until it is closed."""

    def get_request(self):
        OUTSIDE_WORK.started()
        try:
            request, address = super().get_request()
            OUTSIDE_WORK.watch(request)
            return request, address
        finally:
            OUTSIDE_WORK.finished()

    def shutdown_request(self, request) -> None:
        OUTSIDE_WORK.unwatch(request)
        super().shutdown_request(request)


class FunctionHandlerFake:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls
        self.requests: list[RecordedHTTPRequest] = []
        self.replies: dict[str, Reply] = {}
        self.default_reply = Reply.json({"ok": True})
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def url_for(self, path: str) -> str:
        return self.url + path

    def reply(self, path: str, reply: Reply) -> None:
        self.replies[path] = reply

    def start_in_thread(self) -> FunctionHandlerFake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # as servers do: a body written after its headers leaves at once

            def handle_one_request(self) -> None:
                # Virtual time (tests/virtual_time.py) waits while the next request's bytes are unread, then while
                # it is served.
                try:
                    select.select([self.connection], [], [])
                except (OSError, ValueError):  # closed
                    pass
                with OUTSIDE_WORK.busy():
                    super().handle_one_request()

            def do_POST(self) -> None:
                fake._handle(self)

            do_GET = do_PUT = do_DELETE = do_PATCH = do_POST

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        self._stopping.clear()
        self._server = _WatchedHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True  # a sleeping reply must not hold up stop()
        self.port = self._server.server_address[1]
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        OUTSIDE_WORK.watch(self._server.socket)  # a connection waiting to be accepted
        # A short poll interval keeps stop() (which waits for the next poll) fast.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_POLL_S,),
                                        name="fake-function-handler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()  # wakes replies that are sleeping
        OUTSIDE_WORK.unwatch(self._server.socket)
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def __enter__(self) -> FunctionHandlerFake:
        return self.start_in_thread()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> FunctionHandlerFake:
        return self.start_in_thread()

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        path = request.path.split("?")[0]
        self.requests.append(RecordedHTTPRequest(
            request.command, request.path, {name.lower(): value for name, value in request.headers.items()},
            body, time.monotonic()))
        reply = self.replies.get(path, self.default_reply)
        if reply.delay_s and self._stopping.wait(reply.delay_s):
            return
        try:
            request.send_response(reply.status)
            request.send_header("Content-Type", reply.content_type)
            request.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                request.send_header(name, value)
            request.end_headers()
            request.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):  # the caller gave up (timeout): expected
            request.close_connection = True
