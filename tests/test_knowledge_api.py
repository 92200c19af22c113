import hashlib
import os

import pytest

from voicebots.knowledge.models import Knowledgebase

from .documents import docx_bytes, pdf_bytes


@pytest.mark.parametrize("name,content,content_type", [
    ("notes.txt", b"Opening hours are nine to five.", "text/plain"),
    ("guide.md", b"# Guide\n\nPark behind the building.", "text/markdown"),
    ("page.html", b"<!doctype html><html><body><h1>Hi</h1><p>Text</p></body></html>", "text/html"),
    ("latin1.txt", "Caf\u00e9 cr\u00e8me, r\u00e9sum\u00e9 na\u00efve".encode("latin-1"), "text/plain"),
    ("utf16.txt", "Hours: nine to five.".encode("utf-16"), "text/plain"),
    ("manual.pdf", None, "application/pdf"),
    ("policy.docx", None, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
])
def test_upload_each_supported_type(api, name, content, content_type):
    if name.endswith(".pdf"):
        content = pdf_bytes(["Refunds are possible within 30 days."])
    elif name.endswith(".docx"):
        content = docx_bytes("Policy", ["Refunds are possible within 30 days."])
    response = api.upload("Knowledgebase/", name, content)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == name
    assert body["content_type"] == content_type
    assert body["size"] == len(content)
    assert body["checksum"] == hashlib.sha256(content).hexdigest()
    assert body["status"] in ("processing", "ready", "failed")
    assert body["url"].endswith(f"/Knowledgebase/{body['id']}/file")
    download = api.get(f"Knowledgebase/{body['id']}/file")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == content


def test_type_is_judged_by_content_not_name(api):
    junk = api.upload("Knowledgebase/", "notes.md", os.urandom(4096))
    assert junk.status_code == 415
    assert "not a supported document" in junk.json()["error"]
    disguised_pdf = api.upload("Knowledgebase/", "report.txt", pdf_bytes(["Hello"]))
    assert disguised_pdf.json()["content_type"] == "application/pdf"
    zip_not_docx = api.upload("Knowledgebase/", "fake.docx", b"PK\x03\x04" + b"\x00" * 100)
    assert zip_not_docx.status_code == 415
    assert Knowledgebase.objects.count() == 1


def test_zero_byte_upload_is_a_400(api):
    response = api.upload("Knowledgebase/", "empty.txt", b"")
    assert response.status_code == 400
    assert "empty" in response.json()["details"]["file"][0]


def test_missing_file_field_is_a_400(api):
    response = api.post("Knowledgebase/", {"name": "x"})
    assert response.status_code in (400, 415)
    assert response.json()["error"]


def test_too_large_upload_is_a_413(api, settings):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 1000
    response = api.upload("Knowledgebase/", "big.txt", b"a" * 5000)
    assert response.status_code == 413
    assert Knowledgebase.objects.count() == 0


def test_declared_body_far_over_the_limit_is_refused_before_reading(api, settings):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 1000
    response = api.client.post(api.url("Knowledgebase/"), b"", content_type="multipart/form-data; boundary=x",
                               CONTENT_LENGTH=str(10 ** 9), **api.headers)
    assert response.status_code == 413


def test_the_same_file_twice_in_one_account_is_reported(api, other_api):
    first = api.upload("Knowledgebase/", "a.txt", b"Same bytes").json()
    again = api.upload("Knowledgebase/", "b.txt", b"Same bytes")
    assert again.status_code == 409
    assert first["id"] in again.json()["error"]
    assert other_api.upload("Knowledgebase/", "a.txt", b"Same bytes").status_code == 201


def test_patch_replaces_the_document(api):
    document = api.upload("Knowledgebase/", "v1.txt", b"Version one").json()
    response = api.upload(f"Knowledgebase/{document['id']}/", "v2.txt", b"Version two", method="patch")
    assert response.status_code == 204
    fetched = api.get(f"Knowledgebase/{document['id']}").json()
    assert fetched["name"] == "v2.txt" and fetched["size"] == len(b"Version two")
    assert b"".join(api.get(f"Knowledgebase/{document['id']}/file").streaming_content) == b"Version two"
    assert Knowledgebase.objects.get(pk=document["id"]).version == 2


def test_patch_without_a_file_is_a_400(api):
    document = api.upload("Knowledgebase/", "v1.txt", b"Version one").json()
    response = api.client.patch(api.url(f"Knowledgebase/{document['id']}/"), b"",
                                content_type="multipart/form-data; boundary=x", **api.headers)
    assert response.status_code == 400


def test_delete_removes_the_document_and_its_file(api, django_capture_on_commit_callbacks):
    document = api.upload("Knowledgebase/", "gone.txt", b"Soon gone").json()
    stored = Knowledgebase.objects.get(pk=document["id"]).file.path
    assert os.path.exists(stored)
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"Knowledgebase/{document['id']}/").status_code == 204
    assert api.get(f"Knowledgebase/{document['id']}/").status_code == 404
    assert not os.path.exists(stored)


def test_file_download_needs_credentials_and_the_right_account(api, other_api):
    document = api.upload("Knowledgebase/", "secret.txt", b"Private").json()
    assert api.client.get(api.url(f"Knowledgebase/{document['id']}/file")).status_code == 401
    assert other_api.get(f"Knowledgebase/{document['id']}/file").status_code == 404
    assert other_api.get(f"Knowledgebase/{document['id']}").status_code == 404
    assert other_api.delete(f"Knowledgebase/{document['id']}").status_code == 404
    assert other_api.upload(f"Knowledgebase/{document['id']}/", "x.txt", b"hijack", method="patch").status_code == 404
