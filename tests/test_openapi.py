"""The OpenAPI document describes the API as it answers.

Every operation the document lists is called with requests Schemathesis draws from the document itself
(valid ones, then invalid ones, a bounded number of each), on objects that exist and ones that do not, and
every answer must match what the document says of that operation: its status, content type, headers and
body. Hand-written checks then hold the shapes users rely on (pages, 204s, errors, 429s) to the document.
Written over the document, not a list of operations: a new view is covered the day it is routed.
"""
from __future__ import annotations

import base64

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from tests.network_guard import resolve_as_unknown

# Requests go through the WSGI handler, which closes the database connection after each: real transactions.
pytestmark = pytest.mark.django_db(transaction=True)

POSITIVE_EXAMPLES = 6
NEGATIVE_EXAMPLES = 4
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
               response_schema_conformance]


@pytest.fixture
def document():
    return schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())


@pytest.fixture
def world(api, fake_plivo, fake_anthropic, settings, monkeypatch):
    """An account with one object of each kind; Plivo and the model faked (the model says "Hello.")."""
    resolve_as_unknown(monkeypatch, "example.com")  # the function's and webhook's host: nothing is sent out
    settings.API_RATE_LIMITS = {kind: (100_000, 10) for kind in settings.API_RATE_LIMITS}
    api.account.plivo_auth_id, api.account.plivo_auth_token = fake_plivo.auth_id, fake_plivo.auth_token
    api.account.save()
    bot = api.post("Voicebot/", {"name": "Desk"}).json()
    ids = {
        "Voicebot": bot["id"],
        "Function": api.post("Function/", {"name": "f", "handler_url": "https://example.com/x"}).json()["id"],
        "Knowledgebase": api.upload("Knowledgebase/", "a.txt", b"Some knowledge").json()["id"],
        "Campaign": api.post("Campaign/", {"name": "C", "voicebot_id": bot["id"], "caller_ids": ["+14155550100"],
                                           "starts_at": "2025-03-01T00:00:00Z",
                                           "ends_at": "2025-12-31T00:00:00Z"}).json()["id"],
        "Webhook": api.post("Webhook/", {"url": "https://example.com/hook", "events": ["call.ended"]}).json()["id"],
        "Call": api.post("Call/", {"voicebot_id": bot["id"], "from": "+14155550100",
                                   "to": "+14155550123"}).json()["id"],
    }
    assert all(ids.values()), ids
    credentials = base64.b64encode(f"{api.account.auth_id}:{api.token}".encode()).decode()
    return {"auth_id": api.account.auth_id, "headers": {"Authorization": f"Basic {credentials}"}, "ids": ids}


def resource_of(path: str) -> str:
    return path.split("/")[4] if path.count("/") > 4 else ""


def exercise(operation, world, mode: GenerationMode, examples: int) -> None:
    """Send `examples` drawn requests of `mode` with the ids of existing objects; each valid one is sent again with
    the ids it was drawn with, which name nothing (one draw for both: drawing costs as much as answering)."""
    checks = CONFORMANCE if mode is GenerationMode.POSITIVE else [not_a_server_error, status_code_conformance,
                                                                  content_type_conformance]

    @hypothesis_settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def call(case):
        drawn = {**(case.path_parameters or {}), "auth_id": world["auth_id"]}
        real = {**drawn, "id": world["ids"].get(resource_of(operation.path), drawn["id"])} if "id" in drawn else drawn
        for path_parameters in ([real] if mode is GenerationMode.NEGATIVE else [real, drawn]):
            case.path_parameters = path_parameters
            response = case.call(headers=world["headers"])
            case.validate_response(response, checks=checks, headers=world["headers"])

    call()


def test_every_operation_answers_as_documented(document, world):
    operations = [result.ok() for result in document.get_all_operations()]
    assert len(operations) >= 40, "the document lost operations"
    # Deletions last, so that the other operations find the objects they name.
    operations.sort(key=lambda operation: operation.method.upper() == "DELETE")
    for operation in operations:
        exercise(operation, world, GenerationMode.POSITIVE, POSITIVE_EXAMPLES)
        exercise(operation, world, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)


# --- The shapes users rely on, checked in the document and against live answers ----------------------------

@pytest.fixture
def raw_document(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    return response.json()


def api_operations(raw_document):
    for path, operations in raw_document["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def test_the_document_and_its_docs_answer_with_and_without_the_slash(client, db):
    for path in ("/api/schema", "/api/schema/"):
        assert client.get(path, HTTP_ACCEPT="application/json").json()["openapi"].startswith("3."), path
    for path in ("/api/docs", "/api/docs/", "/api/redoc", "/api/redoc/"):
        assert client.get(path).status_code == 200, path


def test_lists_are_documented_as_pages_with_their_key(raw_document):
    schemas = raw_document["components"]["schemas"]
    expected = {"Voicebot": "voicebots", "Function": "functions", "Knowledgebase": "documents", "Call": "calls",
                "Campaign": "campaigns", "Number": "numbers", "Webhook": "webhooks"}
    for resource, key in expected.items():
        ok = raw_document["paths"][f"/v1/Account/{{auth_id}}/{resource}/"]["get"]["responses"]["200"]
        page = schemas[ok["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]]
        assert set(page["required"]) == {"api_id", "meta", key}, resource
        assert page["properties"][key]["type"] == "array"
    assert "limit" in {p["name"] for p in raw_document["paths"]["/v1/Account/{auth_id}/Voicebot/"]["get"]["parameters"]}


def test_every_patch_is_documented_as_a_204_without_a_body(raw_document):
    patches = [(path, op) for path, method, op in api_operations(raw_document) if method == "patch"]
    assert len(patches) >= 6
    for path, operation in patches:
        assert "204" in operation["responses"] and "200" not in operation["responses"], path
        assert "content" not in operation["responses"]["204"], path


def test_every_operation_documents_its_errors_and_rate_limits(raw_document):
    for path, method, operation in api_operations(raw_document):
        responses = operation["responses"]
        for status in ("401", "403", "429"):
            assert responses[status]["content"]["application/json"]["schema"] == \
                {"$ref": "#/components/schemas/Error"}, (method, path, status)
        assert "Retry-After" in responses["429"]["headers"]
        for code, response in responses.items():
            assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= set(response["headers"])
        if "requestBody" in operation:
            assert {"400", "413", "415"} <= set(responses), (method, path)
        if "{id}" in path:
            assert "404" in responses, (method, path)


def test_descriptions_are_written_for_users_not_internal_docstrings(raw_document):
    import inspect

    from voicebots.api.serializers import StrictSerializer
    from voicebots.api.views import AccountResourceViewSet

    internal = {inspect.getdoc(AccountResourceViewSet), inspect.getdoc(StrictSerializer)}
    for path, method, operation in api_operations(raw_document):
        assert operation.get("summary") and operation.get("description"), (method, path)
        assert operation["description"] not in internal, (method, path)
    for name, schema in raw_document["components"]["schemas"].items():
        assert schema.get("description") not in internal, name


def test_nested_request_bodies_are_described(raw_document):
    schemas = raw_document["components"]["schemas"]
    bot = schemas["VoicebotRequest"]["properties"]
    for group, keys in (("answer_llm", {"provider", "model"}), ("tts", {"provider", "voice"}),
                        ("stt", {"provider", "language"})):
        target = schemas[bot[group]["$ref"].rsplit("/", 1)[-1]]
        assert set(target["properties"]) == keys and target["additionalProperties"] is False, group
    assert schemas["VoicebotRequest"]["additionalProperties"] is False
    windows = schemas["CampaignRequest"]["properties"]["calling_windows"]
    assert set(windows["properties"]) == {"mon", "tue", "wed", "thu", "fri", "sat", "sun"}
    assert schemas["OutboundCallRequest"]["properties"]["variables"]["additionalProperties"]["oneOf"]
    parameter = schemas["FunctionRequest"]["properties"]["userParameters"]["items"]
    assert set(schemas[parameter["$ref"].rsplit("/", 1)[-1]]["properties"]) == {"name", "type", "description",
                                                                                 "required"}


def call_operation(document, world, method, path, **case):
    operation = document[path][method]
    made = operation.Case(path_parameters={"auth_id": world["auth_id"], **case.pop("path_parameters", {})}, **case)
    response = made.call(headers=world["headers"])
    made.validate_response(response, checks=CONFORMANCE, headers=world["headers"])
    return response


def test_live_errors_and_429s_match_the_document(document, world, settings):
    bad = call_operation(document, world, "POST", "/v1/Account/{auth_id}/Voicebot/", body={"name": ""},
                         media_type="application/json")
    assert bad.status_code == 400 and "name" in bad.json()["details"]
    missing = call_operation(document, world, "GET", "/v1/Account/{auth_id}/Voicebot/{id}/",
                             path_parameters={"id": "00000000-0000-4000-8000-000000000000"})
    assert missing.status_code == 404
    settings.API_RATE_LIMITS = {**settings.API_RATE_LIMITS, "read": (1, 10)}
    statuses = [call_operation(document, world, "GET", "/v1/Account/{auth_id}/Function/").status_code
                for _ in range(2)]
    assert statuses[-1] == 429


def test_created_objects_match_the_document(document, world):
    bot = call_operation(document, world, "POST", "/v1/Account/{auth_id}/Voicebot/", media_type="application/json",
                         body={"name": "Shaped", "answer_llm": {"provider": "anthropic", "model": "claude 3.5 haiku"},
                               "tts": {"provider": "deepgram", "voice": "luna"}})
    assert bot.status_code == 201
    function = call_operation(document, world, "POST", "/v1/Account/{auth_id}/Function/",
                              media_type="application/json",
                              body={"name": "book", "handler_url": "https://example.com/book",
                                    "userParameters": [{"name": "date", "type": "string", "required": True}],
                                    "fixedParameters": [{"name": "clinic", "value": {"id": 42}}]})
    assert function.status_code == 201
    patched = call_operation(document, world, "PATCH", "/v1/Account/{auth_id}/Voicebot/{id}/",
                             path_parameters={"id": bot.json()["id"]}, media_type="application/json",
                             body={"function_ids": [function.json()["id"]]})
    assert patched.status_code == 204 and patched.content == b""
    for path in ("/v1/Account/{auth_id}/Voicebot/{id}/", "/v1/Account/{auth_id}/Call/{id}/"):
        resource = resource_of(path)
        ident = bot.json()["id"] if resource == "Voicebot" else world["ids"][resource]
        assert call_operation(document, world, "GET", path, path_parameters={"id": ident}).status_code == 200
