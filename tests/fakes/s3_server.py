"""A protocol-accurate fake of an S3-compatible object store (the REST API boto3 speaks) on 127.0.0.1.

    fake = FakeS3(bucket="calls").start_in_thread()
    ... S3Storage(endpoint_url=fake.url, bucket_name="calls", access_key=fake.access_key, ...) ...
    fake.objects["recordings/..."], fake.requests

Path-style addressing (`/{bucket}/{key}`). Objects: PUT (plain, or `aws-chunked` bodies with trailing
checksums as recent botocore sends them), GET (with a single `Range`, answered 206 with `Content-Range`), HEAD,
DELETE, and the multipart upload calls boto3 uses for large files. A request without AWS Signature V4 for
`access_key` is refused (403, `AccessDenied`); an unknown bucket is 404 `NoSuchBucket`, a missing key
`NoSuchKey`. Faults: `unavailable = True` answers every request with 503 `SlowDown`.
"""
from __future__ import annotations

import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_ACCESS_KEY = "AKIAFAKEVOICEBOTS"
DEFAULT_SECRET_KEY = "fake-secret-key"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def _error(code: str, message: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
            f"</Error>").encode()


def _dechunk(body: bytes) -> bytes:
    """The payload of an `aws-chunked` body: `<hex size>[;chunk-signature=...]\\r\\n<data>\\r\\n` ... `0\\r\\n`
    followed by trailers."""
    out, position = [], 0
    while True:
        line_end = body.index(b"\r\n", position)
        size = int(body[position:line_end].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        start = line_end + 2
        out.append(body[start:start + size])
        position = start + size + 2


class FakeS3:
    def __init__(self, *, bucket: str = "recordings", access_key: str = DEFAULT_ACCESS_KEY) -> None:
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = DEFAULT_SECRET_KEY
        self.objects: dict[str, bytes] = {}
        self.requests: list[dict[str, Any]] = []  # {"method", "key", "headers"}
        self.unavailable = False
        self._uploads: dict[str, dict[int, bytes]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def start_in_thread(self) -> FakeS3:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                fake._handle(self)

            do_PUT = do_HEAD = do_DELETE = do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-s3",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # --- requests ----------------------------------------------------------------------------------

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        bucket, _, key = unquote(parts.path).lstrip("/").partition("/")
        headers = {name.lower(): value for name, value in request.headers.items()}
        body = request.rfile.read(int(headers.get("content-length", "0") or 0))
        with self._lock:
            self.requests.append({"method": request.command, "key": key, "headers": headers})
        if self.unavailable:
            return self._send(request, 503, _error("SlowDown", "Please reduce your request rate."))
        authorization = headers.get("authorization", "")
        if not authorization.startswith(f"AWS4-HMAC-SHA256 Credential={self.access_key}/"):
            return self._send(request, 403, _error("AccessDenied", "Access Denied"))
        if bucket != self.bucket:
            return self._send(request, 404, _error("NoSuchBucket", "The specified bucket does not exist"))
        if "aws-chunked" in headers.get("content-encoding", "") or headers.get(
                "x-amz-content-sha256", "").startswith("STREAMING-"):
            body = _dechunk(body)
        method = request.command
        if method == "POST" and "uploads" in query:
            upload_id = hashlib.sha1(f"{key}{len(self._uploads)}".encode()).hexdigest()
            self._uploads[upload_id] = {}
            xml = (f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                   f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>")
            return self._send(request, 200, xml.encode())
        if method == "PUT" and "uploadId" in query:
            self._uploads[query["uploadId"][0]][int(query["partNumber"][0])] = body
            return self._send(request, 200, b"", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        if method == "POST" and "uploadId" in query:
            parts_ = self._uploads.pop(query["uploadId"][0])
            self.objects[key] = b"".join(parts_[number] for number in sorted(parts_))
            xml = f"<CompleteMultipartUploadResult><Key>{key}</Key><ETag>\"x\"</ETag></CompleteMultipartUploadResult>"
            return self._send(request, 200, xml.encode())
        if method == "DELETE" and "uploadId" in query:
            self._uploads.pop(query["uploadId"][0], None)
            return self._send(request, 204, b"")
        if method == "PUT":
            self.objects[key] = body
            return self._send(request, 200, b"", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
        if method == "DELETE":
            self.objects.pop(key, None)
            return self._send(request, 204, b"")
        if method in ("GET", "HEAD"):
            data = self.objects.get(key)
            if data is None:
                return self._send(request, 404, _error("NoSuchKey", "The specified key does not exist."),
                                  head=method == "HEAD")
            return self._send_object(request, data, headers.get("range"), head=method == "HEAD")
        return self._send(request, 405, _error("MethodNotAllowed", "The method is not allowed."))

    def _send_object(self, request, data: bytes, range_header: str | None, head: bool) -> None:
        extra = {"ETag": f'"{hashlib.md5(data).hexdigest()}"', "Accept-Ranges": "bytes",
                 "Last-Modified": "Fri, 04 Dec 2026 12:00:00 GMT", "Content-Type": "audio/wav"}
        match = _RANGE.match(range_header or "")
        if match is None:
            return self._send(request, 200, data, extra, head=head)
        first, last = match.groups()
        start = len(data) - int(last) if not first else int(first)
        end = len(data) - 1 if not first or not last else min(int(last), len(data) - 1)
        if start >= len(data):
            return self._send(request, 416, _error("InvalidRange", "The requested range is not satisfiable"))
        extra["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return self._send(request, 206, data[start:end + 1], extra, head=head)

    @staticmethod
    def _send(request, status: int, body: bytes, headers: dict[str, str] | None = None, head: bool = False) -> None:
        request.send_response(status)
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        if body and not headers:
            request.send_header("Content-Type", "application/xml")
        request.send_header("Content-Length", str(len(body)))
        request.send_header("x-amz-request-id", "FAKE")
        request.end_headers()
        if not head:
            request.wfile.write(body)
