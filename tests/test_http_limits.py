"""A real Daphne answers oversized URLs and headers with 414/431 (JSON, like every API error) instead of
dropping the connection, and malformed requests with a JSON 400 instead of an empty one."""
import json
import uuid

import pytest

from tests.daphne_server import DaphneServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        daphne = DaphneServer()
    yield daphne
    daphne.stop()


def status_and_body(response: bytes) -> tuple[int, dict]:
    assert response, "the server dropped the connection without an answer"
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/json" in head.lower(), head
    parsed = json.loads(body)
    uuid.UUID(parsed["api_id"])
    return status, parsed


def test_a_100_kb_url_is_a_414(server):
    request = b"GET /v1/Account/MA1/Voicebot/?q=" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    status, body = status_and_body(server.raw(request))
    assert status == 414 and "URL is too long" in body["error"]


def test_a_90_kb_header_is_a_431(server):
    request = b"GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"b" * 90_000 + b"\r\n\r\n"
    status, body = status_and_body(server.raw(request))
    assert status == 431 and "header is too long" in body["error"]


def test_too_many_header_bytes_in_all_are_a_431(server):
    headers = b"".join(b"X-Part-%d: %s\r\n" % (i, b"c" * 1000) for i in range(40))
    status, body = status_and_body(server.raw(b"GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n"))
    assert status == 431 and "headers are too large" in body["error"]


def test_a_malformed_request_is_a_json_400(server):
    status, body = status_and_body(server.raw(b"GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                              b"Content-Length: nope\r\n\r\n"))
    assert status == 400 and body["error"]


def test_ordinary_requests_are_served_as_before(server):
    response = server.raw(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b'{"status": "ok"}')


def test_an_empty_multipart_body_over_http_is_a_json_400(server, api):
    import base64

    credentials = base64.b64encode(f"{api.account.auth_id}:{api.token}".encode())
    request = (f"POST /v1/Account/{api.account.auth_id}/Knowledgebase/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 0\r\nConnection: close\r\n"
               ).encode() + b"Authorization: Basic " + credentials + b"\r\n\r\n"
    status, body = status_and_body(server.raw(request))
    assert status == 400 and "file" in body["error"]


def test_a_multipart_body_without_parts_reaches_the_app(server, api):
    import base64

    credentials = base64.b64encode(f"{api.account.auth_id}:{api.token}".encode())
    request = (f"POST /v1/Account/{api.account.auth_id}/Knowledgebase/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 9\r\nConnection: close\r\n"
               ).encode() + b"Authorization: Basic " + credentials + b"\r\n\r\n--xyz--\r\n"
    status, body = status_and_body(server.raw(request))
    assert status == 400 and "multipart field 'file'" in body["error"]


def test_an_upload_through_daphne_is_read_by_the_app(server, api):
    import httpx

    with httpx.Client(auth=(api.account.auth_id, api.token), timeout=30) as http:
        response = http.post(f"{server.url}/v1/Account/{api.account.auth_id}/Knowledgebase/",
                             files={"file": ("hours.md", b"# Hours\n\nWe open at nine.")})
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "hours.md" and response.headers["X-RateLimit-Limit"]
