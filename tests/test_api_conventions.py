import uuid

import pytest


def assert_error(response, status):
    assert response.status_code == status, response.content
    body = response.json()
    uuid.UUID(body["api_id"])
    assert isinstance(body["error"], str) and body["error"]
    return body


def test_unknown_api_path_is_a_json_404(api):
    assert_error(api.get("Nonsense/"), 404)
    assert_error(api.client.get("/v1/whatever"), 404)


def test_method_not_allowed_is_a_json_405(api):
    assert_error(api.client.put(api.url("Voicebot/"), "{}", content_type="application/json", **api.headers), 405)
    assert_error(api.post("Voicebot/" + str(uuid.uuid4()), {}), 405)


def test_malformed_json_is_a_400(api):
    response = api.client.post(api.url("Voicebot/"), "{not json", content_type="application/json", **api.headers)
    assert "JSON" in assert_error(response, 400)["error"]


@pytest.mark.parametrize("payload", [[], "a string", 42, None])
def test_a_body_that_is_not_an_object_is_a_400(api, payload):
    assert_error(api.post("Voicebot/", payload), 400)


def test_empty_body_is_a_validation_error(api):
    response = api.client.post(api.url("Voicebot/"), "", content_type="application/json", **api.headers)
    body = assert_error(response, 400)
    assert "name" in body["details"]


def test_unsupported_content_type_is_a_415(api):
    response = api.client.post(api.url("Voicebot/"), "name=x", content_type="text/csv", **api.headers)
    assert_error(response, 415)


def test_oversized_json_body_is_a_413(api):
    huge = {"name": "big", "prompt": "x" * (3 * 1024 * 1024)}
    assert_error(api.post("Voicebot/", huge), 413)


def test_every_json_response_has_a_fresh_api_id(api):
    first = api.get("Voicebot/").json()["api_id"]
    second = api.get("Voicebot/").json()["api_id"]
    created = api.post("Voicebot/", {"name": "A"}).json()["api_id"]
    assert len({first, second, created}) == 3


@pytest.mark.parametrize("resource", ["Voicebot", "Function", "Knowledgebase"])
def test_paths_work_with_and_without_trailing_slash(api, resource):
    assert api.get(f"{resource}").status_code == 200
    assert api.get(f"{resource}/").status_code == 200


def test_item_paths_work_with_and_without_trailing_slash_for_every_method(api):
    bot_id = api.post("Voicebot", {"name": "Slashless"}).json()["id"]
    assert api.get(f"Voicebot/{bot_id}").status_code == 200
    assert api.get(f"Voicebot/{bot_id}/").status_code == 200
    assert api.patch(f"Voicebot/{bot_id}", {"name": "B"}).status_code == 204
    assert api.patch(f"Voicebot/{bot_id}/", {"name": "C"}).status_code == 204
    assert api.delete(f"Voicebot/{bot_id}").status_code == 204
    other = api.post("Voicebot/", {"name": "Other"}).json()["id"]
    assert api.delete(f"Voicebot/{other}/").status_code == 204


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=10000", "limit=abc", "offset=-1", "offset=x"])
def test_pagination_parameters_out_of_range_are_400(api, query):
    body = assert_error(api.get(f"Voicebot/?{query}"), 400)
    assert set(body["details"]) & {"limit", "offset"}


def test_pagination_pages_newest_first_with_meta(api):
    names = [f"bot {i}" for i in range(5)]
    for name in names:
        api.post("Voicebot/", {"name": name})
    first = api.get("Voicebot/", {"limit": 2}).json()
    assert [b["name"] for b in first["voicebots"]] == ["bot 4", "bot 3"]
    assert first["meta"]["total_count"] == 5
    assert first["meta"]["previous"] is None
    assert "offset=2" in first["meta"]["next"] and "limit=2" in first["meta"]["next"]
    last = api.get("Voicebot/", {"limit": 2, "offset": 4}).json()
    assert [b["name"] for b in last["voicebots"]] == ["bot 0"]
    assert last["meta"]["next"] is None
    assert "offset=2" in last["meta"]["previous"]
    beyond = api.get("Voicebot/", {"limit": 100, "offset": 50}).json()
    assert beyond["voicebots"] == [] and beyond["meta"]["total_count"] == 5


def test_a_malformed_id_is_a_404_not_a_500(api):
    assert_error(api.get("Voicebot/not-a-uuid/"), 404)
    assert_error(api.delete("Function/123/"), 404)
