"""Daphne answers requests too large for it with a status instead of dropping the connection.

Daphne parses HTTP with Twisted, whose HTTPChannel takes lines of up to 16 KB and 16 KB of headers in all.
Past those limits Twisted drops the connection without a word (a long URL or header line) or answers a bare
`400` with an empty body. This channel answers `414 URI Too Long` for a request line past the limit,
`431 Request Header Fields Too Large` for headers past theirs, and a JSON body in the API's error shape for
those and for any other request Twisted cannot parse. After such an answer it reads and drops what the
client still sends for a moment before closing, so that the client reads the answer instead of a connection
reset. It also leaves form bodies to the app: Twisted's own multipart parsing refused a multipart body
without parts with a bare 400.

`install()` makes Daphne build its connections with this channel; config/asgi.py calls it, so every way of
starting Daphne with the app (`manage.py run`, the Procfile) gets it.
"""
from __future__ import annotations

import json
import uuid

from twisted.web import http

DRAIN_SECONDS = 2.0  # how long a refused client may go on sending before the connection is cut


def _answer(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"api_id": str(uuid.uuid4()), "error": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n")
    return head.encode() + body


class LimitedHTTPChannel(http.HTTPChannel):
    def _waiting_for_request_line(self) -> bool:
        return bool(getattr(self, "_HTTPChannel__first_line", False))

    def lineLengthExceeded(self, line):
        if self._waiting_for_request_line():
            return self._refuse(414, "URI Too Long", f"The URL is too long: at most {self.MAX_LENGTH} bytes.")
        return self._refuse(431, "Request Header Fields Too Large",
                            f"A request header is too long: at most {self.MAX_LENGTH} bytes.")

    def lineReceived(self, line):
        if not self._waiting_for_request_line() and \
                self._receivedHeaderSize + len(line) > self.totalHeadersSize:
            return self._refuse(431, "Request Header Fields Too Large",
                                f"The request headers are too large: at most {self.totalHeadersSize} bytes in all.")
        if not self._waiting_for_request_line() and line and self._receivedHeaderCount >= self.maxHeaders:
            return self._refuse(431, "Request Header Fields Too Large",
                                f"The request has too many headers: at most {self.maxHeaders}.")
        starting = self._waiting_for_request_line()
        result = super().lineReceived(line)
        if starting and self.requests:
            # The app parses request bodies itself. Twisted would parse form bodies first, to no use (a 20 MB
            # upload twice), and refuse some the app takes: a multipart body without parts got a bare 400.
            self.requests[-1]._parsePOSTFormSubmission = False
        return result

    def _respondToBadRequestAndDisconnect(self):
        self._refuse(400, "Bad Request", "The request is not valid HTTP/1.1.")

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self.paused = True  # Twisted's line loop stops here
        self.clearLineBuffer()
        self.dataReceived = lambda data: None  # what the client still sends is read and dropped
        self.transport.write(_answer(status, reason, message))
        close_writing = getattr(self.transport, "loseWriteConnection", self.transport.loseConnection)
        close_writing()
        from twisted.internet import reactor  # here: Daphne installs its own reactor before serving

        reactor.callLater(DRAIN_SECONDS, self._cut)

    def _cut(self) -> None:
        if self.transport is not None and not getattr(self.transport, "disconnected", False):
            self.transport.abortConnection()


def _channel_factory(factory) -> http._GenericHTTPChannelProtocol:
    return http._GenericHTTPChannelProtocol(LimitedHTTPChannel())


def install() -> None:
    """Daphne's HTTP connections use LimitedHTTPChannel from now on."""
    from daphne.http_protocol import HTTPFactory

    HTTPFactory.protocol = _channel_factory
