"""Rate limits per account and class of endpoint, in short windows, told in headers."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def limits(settings):
    """Budgets per 10-second window, and a test that starts with at least 3 s of its window left: the windows are
    fixed (the clock's tens of seconds), and a test's requests split over two of them would be counted apart."""
    settings.API_RATE_LIMITS = {"read": (5, 10), "write": (3, 10), "chat": (2, 10), "upload": (2, 10),
                                "search": (2, 10)}
    left_s = 10 - time.time() % 10
    if left_s < 3:
        time.sleep(left_s)
    return settings.API_RATE_LIMITS


def headers_of(response) -> tuple[int, int, int]:
    return (int(response["X-RateLimit-Limit"]), int(response["X-RateLimit-Remaining"]),
            int(response["X-RateLimit-Reset"]))


def test_every_api_answer_says_its_limit_and_what_is_left(api, limits):
    first, second = api.get("Voicebot/"), api.get("Voicebot/")
    assert headers_of(first)[:2] == (5, 4) and headers_of(second)[:2] == (5, 3)
    assert 1 <= headers_of(second)[2] <= 10
    created = api.post("Voicebot/", {"name": "Counted as a write"})
    assert created.status_code == 201 and headers_of(created)[:2] == (3, 2)


def test_a_class_over_its_limit_is_a_429_with_retry_after_and_other_classes_go_on(api, limits, fake_anthropic):
    from tests.fakes.anthropic_server import Text, Turn

    bot = api.post("Voicebot/", {"name": "Chatty"}).json()
    fake_anthropic.script(Turn([Text("One.")]), Turn([Text("Two.")]))
    for _ in range(2):
        assert api.post(f"Voicebot/{bot['id']}/chat", {"message": "Hi"}).status_code == 200
    refused = api.post(f"Voicebot/{bot['id']}/chat", {"message": "Hi"})
    assert refused.status_code == 429
    body = refused.json()
    assert "chat" in body["error"] and "2 per 10 seconds" in body["error"]
    assert 1 <= int(refused["Retry-After"]) <= 10
    assert headers_of(refused)[:2] == (2, 0)
    assert len(fake_anthropic.requests) == 2  # the refused chat never reached the model
    assert api.get(f"Voicebot/{bot['id']}").status_code == 200  # reads have their own budget
    assert api.post("Knowledgebase/search", {"query": "hours"}).status_code == 200


def test_uploads_and_searches_are_their_own_classes(api, limits):
    for index in range(2):
        assert api.upload("Knowledgebase/", f"a{index}.txt", f"Knowledge number {index}".encode()).status_code == 201
    assert api.upload("Knowledgebase/", "c.txt", b"One too many").status_code == 429
    for _ in range(2):
        assert api.post("Knowledgebase/search", {"query": "knowledge"}).status_code == 200
    assert api.post("Knowledgebase/search", {"query": "knowledge"}).status_code == 429
    assert api.post("Function/", {"name": "f", "handler_url": "https://example.com/x"}).status_code == 201


def test_the_limit_is_per_account(api, other_api, limits):
    for _ in range(5):
        api.get("Voicebot/")
    assert api.get("Voicebot/").status_code == 429
    assert other_api.get("Voicebot/").status_code == 200


def test_a_burst_waits_only_for_its_short_window(api, settings):
    settings.API_RATE_LIMITS = {**settings.API_RATE_LIMITS, "read": (3, 1)}
    statuses = [api.get("Voicebot/").status_code for _ in range(8)]
    assert 429 in statuses
    time.sleep(1.1)
    assert api.get("Voicebot/").status_code == 200


def test_plivo_callbacks_are_never_rate_limited(api, settings, limits):
    settings.PLIVO_VERIFY_SIGNATURES = False
    bot = api.post("Voicebot/", {"name": "Desk"}).json()
    for index in range(8):
        response = api.client.post(f"/v1/Account/{api.account.auth_id}/Voicebot/{bot['id']}/inbound_call",
                                   {"CallUUID": f"call-{index}", "From": "1", "To": "2"})
        assert response.status_code == 200


def settings_from(environment: dict) -> subprocess.CompletedProcess:
    code = "import django; django.setup(); from django.conf import settings; print(settings.API_RATE_LIMITS)"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("API_RATE_LIMIT")}, **environment,
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_limits_are_set_from_the_environment_and_bad_values_are_named():
    result = settings_from({"API_RATE_LIMIT_CHAT": "5/10s", "API_RATE_LIMIT_READ": "1000/min"})
    assert result.returncode == 0, result.stderr
    assert "'chat': (5, 10)" in result.stdout and "'read': (1000, 60)" in result.stdout
    bad = settings_from({"API_RATE_LIMIT_CHAT": "lots"})
    assert bad.returncode != 0 and "API_RATE_LIMIT_CHAT" in bad.stderr
