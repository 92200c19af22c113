import pytest

from voicebots.functions.models import Function

HOOK = "https://hooks.example.com/book"


def test_create_function_with_parameters(api):
    payload = {
        "name": "book_appointment", "description": "Books a slot.", "handler_url": HOOK,
        "userParameters": [
            {"name": "date", "type": "string", "description": "YYYY-MM-DD", "required": True},
            {"name": "party_size", "type": "integer"},
        ],
        "fixedParameters": [{"name": "clinic_id", "value": "c-42"}],
        "timeout": 3,
    }
    response = api.post("Function/", payload)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["userParameters"][1] == {"name": "party_size", "type": "integer", "description": "", "required": False}
    assert body["fixedParameters"] == [{"name": "clinic_id", "value": "c-42"}]
    assert body["timeout"] == 3
    listed = api.get("Function/").json()
    assert [f["id"] for f in listed["functions"]] == [body["id"]]


@pytest.mark.parametrize("payload,field", [
    ({"handler_url": HOOK}, "name"),
    ({"name": "has space", "handler_url": HOOK}, "name"),
    ({"name": "x" * 65, "handler_url": HOOK}, "name"),
    ({"name": "end_call", "handler_url": HOOK}, "name"),
    ({"name": "f"}, "handler_url"),
    ({"name": "f", "handler_url": "ftp://example.com/x"}, "handler_url"),
    ({"name": "f", "handler_url": "not a url"}, "handler_url"),
    ({"name": "f", "handler_url": HOOK, "userParameters": [{"name": "a", "type": "date"}]}, "userParameters[0].type"),
    ({"name": "f", "handler_url": HOOK, "userParameters": [{"type": "string"}]}, "userParameters[0].name"),
    ({"name": "f", "handler_url": HOOK, "userParameters": "nope"}, "userParameters"),
    ({"name": "f", "handler_url": HOOK, "userParameters": [{"name": "a", "type": "string"}] * 2}, "userParameters"),
    ({"name": "f", "handler_url": HOOK, "userParameters": [{"name": "a", "type": "string"}],
      "fixedParameters": [{"name": "a", "value": 1}]}, "fixedParameters"),
    ({"name": "f", "handler_url": HOOK, "fixedParameters": [{"name": "a"}]}, "fixedParameters[0].value"),
    ({"name": "f", "handler_url": HOOK, "timeout": 120}, "timeout"),
])
def test_invalid_functions_are_400_with_details(api, payload, field):
    response = api.post("Function/", payload)
    assert response.status_code == 400, response.json()
    assert field in response.json()["details"], response.json()


def test_plain_http_handlers_only_when_allowed(api, settings):
    settings.FUNCTION_ALLOW_HTTP = False
    response = api.post("Function/", {"name": "f", "handler_url": "http://hooks.example.com/x"})
    assert response.status_code == 400 and "https" in response.json()["details"]["handler_url"][0]
    settings.FUNCTION_ALLOW_HTTP = True
    assert api.post("Function/", {"name": "f", "handler_url": "http://hooks.example.com/x"}).status_code == 201


def test_function_names_are_unique_per_account_only(api, other_api):
    assert api.post("Function/", {"name": "dup", "handler_url": HOOK}).status_code == 201
    second = api.post("Function/", {"name": "dup", "handler_url": HOOK})
    assert second.status_code == 400 and "already" in second.json()["details"]["name"][0]
    assert other_api.post("Function/", {"name": "dup", "handler_url": HOOK}).status_code == 201


def test_patch_function(api):
    function_id = api.post("Function/", {"name": "f", "handler_url": HOOK}).json()["id"]
    assert api.patch(f"Function/{function_id}", {"description": "Now described", "name": "f"}).status_code == 204
    assert api.get(f"Function/{function_id}").json()["description"] == "Now described"


def test_deleted_function_disappears_from_its_bots(api):
    function_id = api.post("Function/", {"name": "f", "handler_url": HOOK}).json()["id"]
    bot = api.post("Voicebot/", {"name": "B", "function_ids": [function_id]}).json()
    assert api.delete(f"Function/{function_id}/").status_code == 204
    assert api.get(f"Voicebot/{bot['id']}/").json()["function_ids"] == []
    assert not Function.objects.filter(pk=function_id).exists()
