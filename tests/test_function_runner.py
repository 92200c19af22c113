"""The function (webhook) runner against a real local HTTP handler. No database and no Django."""
from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from tests.fakes.http_handler import FunctionHandlerFake, Reply, self_signed_tls
from tests.network_guard import resolve_as_unknown
from voicebots.conversation import ToolCall
from voicebots.functions.runner import (
    MAX_RESULT_CHARS,
    FunctionConfig,
    FunctionResult,
    FunctionRunner,
    FunctionToolRunner,
    verify_signature,
)
from voicebots.core.outbound import is_public_address, webhook_client

SECRET = "whsec-test-secret"
CALL_INFO = {"call_uuid": "c-123", "from": "+15551234567", "to": "+15557654321", "direction": "inbound",
             "extra": "not sent"}


@pytest.fixture
def handler():
    with FunctionHandlerFake() as server:
        yield server


@pytest.fixture
async def runner():
    function_runner = FunctionRunner(SECRET, allow_private=True, allow_http=True)
    yield function_runner
    await function_runner.aclose()


async def call(runner: FunctionRunner, url: str, **overrides: Any) -> FunctionResult:
    arguments: dict[str, Any] = {
        "function_name": "book_table", "user_params": {"party_size": 2},
        "fixed_params": [{"name": "restaurant_id", "value": "r-42"}], "voicebot_id": "bot-1",
        "session_id": "session-1", "call_info": CALL_INFO, "timeout_s": 2.0}
    return await runner.call(url=url, **{**arguments, **overrides})


async def test_request_is_signed_and_verifiable(handler, runner):
    result = await call(runner, handler.url_for("/book"))

    assert not result.is_error and result.status == 200
    request = handler.requests[0]
    timestamp, signature = request.headers["x-voicebots-timestamp"], request.headers["x-voicebots-signature"]
    assert signature.startswith("sha256=")
    assert abs(int(timestamp) - time.time()) < 5
    assert verify_signature(SECRET, timestamp, request.body, signature)
    assert not verify_signature("other-secret", timestamp, request.body, signature)
    assert not verify_signature(SECRET, timestamp, request.body + b" ", signature)
    assert not verify_signature(SECRET, timestamp, request.body, signature, now=int(timestamp) + 301)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"].startswith("Voicebots-Functions/")
    assert request.headers["host"] == f"127.0.0.1:{handler.port}"


async def test_payload_merges_user_and_fixed_parameters_with_fixed_winning(handler, runner):
    await call(runner, handler.url_for("/book"), user_params={"party_size": 2, "restaurant_id": "forged"})

    assert handler.requests[0].json() == {
        "function": "book_table",
        "parameters": {"party_size": 2, "restaurant_id": "r-42"},
        "voicebot_id": "bot-1",
        "session_id": "session-1",
        "call": {"call_uuid": "c-123", "from": "+15551234567", "to": "+15557654321", "direction": "inbound"},
    }
    function = FunctionConfig("book_table", "Book.", handler.url, [{"name": "party_size", "type": "integer"}],
                              [{"name": "restaurant_id", "value": "r-42"}])
    assert list(function.tool_spec().input_schema["properties"]) == ["party_size"]


async def test_chat_sessions_send_a_null_call(handler, runner):
    await call(runner, handler.url, call_info=None)

    assert handler.requests[0].json()["call"] is None


async def test_json_reply_is_passed_on_as_compact_json(handler, runner):
    handler.reply("/", Reply.json({"booked": True, "times": ["19:00", "20:30"]}))

    result = await call(runner, handler.url)

    assert result.content == '{"booked":true,"times":["19:00","20:30"]}'


async def test_text_reply_is_passed_through_and_long_text_truncated(handler, runner):
    handler.reply("/short", Reply.text("Table booked for 7pm."))
    handler.reply("/long", Reply.text("z" * 20_000))

    short, long = await call(runner, handler.url_for("/short")), await call(runner, handler.url_for("/long"))

    assert short.content == "Table booked for 7pm." and not short.is_error
    assert long.content.startswith("z" * MAX_RESULT_CHARS) and long.content.endswith("[truncated]")


async def test_timeout_becomes_an_error_result_in_time(handler, runner):
    handler.reply("/", Reply.sleep(3))

    started = time.monotonic()
    result = await call(runner, handler.url, timeout_s=0.3)

    assert time.monotonic() - started < 0.8
    assert result.is_error and result.content == "The book table service did not answer in time."


async def test_server_error_becomes_an_error_result(handler, runner):
    handler.reply("/", Reply.error(500, "Database unavailable"))

    result = await call(runner, handler.url)

    assert result.is_error and result.status == 500
    assert result.content == "The book table service returned an error (HTTP 500). Database unavailable"


async def test_private_address_is_refused_before_any_request(handler):
    guarded = FunctionRunner(SECRET, allow_private=False, allow_http=True)

    result = await call(guarded, handler.url)
    mapped = await call(guarded, f"http://[::ffff:127.0.0.1]:{handler.port}/")
    await guarded.aclose()

    assert result.is_error and "private network" in result.content
    assert mapped.is_error and "private network" in mapped.content
    assert handler.requests == []


async def test_plain_http_is_refused_unless_allowed(handler):
    https_only = FunctionRunner(SECRET, allow_private=True, allow_http=False)

    result = await call(https_only, handler.url)
    await https_only.aclose()

    assert result.is_error and result.content == "The book table service address must use https."
    assert handler.requests == []


async def test_host_name_is_kept_while_the_resolved_address_is_dialed(handler, runner):
    result = await call(runner, f"http://localhost:{handler.port}/book")

    assert not result.is_error
    assert handler.requests[0].headers["host"] == f"localhost:{handler.port}"


async def test_redirect_to_another_host_is_not_followed(handler, runner):
    handler.reply("/old", Reply.redirect(f"http://localhost:{handler.port}/new"))

    result = await call(runner, handler.url_for("/old"))

    assert result.is_error and "redirected to another address" in result.content
    assert [request.path for request in handler.requests] == ["/old"]


async def test_redirect_on_the_same_host_is_followed_with_the_same_signed_body(handler, runner):
    handler.reply("/old", Reply.redirect("/new", status=308))
    handler.reply("/new", Reply.json({"moved": True}))

    result = await call(runner, handler.url_for("/old"))

    assert result.content == '{"moved":true}'
    old, new = handler.requests
    assert (old.path, new.path, new.method) == ("/old", "/new", "POST")
    assert new.body == old.body and new.headers["x-voicebots-signature"] == old.headers["x-voicebots-signature"]


async def test_redirect_loop_stops(handler, runner):
    handler.reply("/loop", Reply.redirect("/loop"))

    result = await call(runner, handler.url_for("/loop"))

    assert result.is_error and "too many times" in result.content
    assert len(handler.requests) == 4


async def test_oversized_response_becomes_an_error(handler, runner):
    handler.reply("/", Reply.text("x" * 70_000))

    result = await call(runner, handler.url)

    assert result.is_error and result.content == "The book table service response was too large."


async def test_unreachable_and_unknown_hosts_become_error_results(runner, monkeypatch):
    resolve_as_unknown(monkeypatch, "no-such-host.invalid")  # as DNS answers, without asking it
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    refused = await call(runner, f"http://127.0.0.1:{closed_port}/")
    unknown = await call(runner, "http://no-such-host.invalid/")
    invalid = await call(runner, "ftp://example.com/")

    assert refused.is_error and refused.content == "The book table service could not be reached."
    assert unknown.is_error and unknown.content == "The book table service address could not be found."
    assert invalid.is_error and "not a valid web address" in invalid.content


@pytest.mark.parametrize("address, public", [
    ("93.184.216.34", True), ("2606:4700:4700::1111", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("240.0.0.1", False), ("::1", False), ("::", False), ("fe80::1%eth0", False), ("fc00::1", False),
    ("ff02::1", False), ("::ffff:127.0.0.1", False), ("::ffff:10.0.0.1", False), ("2002:0a00:0001::", False),
])
def test_address_guard(address, public):
    assert is_public_address(address) is public


async def test_tool_runner_calls_the_function_named_by_the_tool(handler, runner):
    handler.reply("/hours", Reply.json({"open": "12-23"}))
    functions = [FunctionConfig("opening_hours", "Hours.", handler.url_for("/hours"),
                                fixed_parameters=[{"name": "site", "value": "rome"}], timeout_s=1.0)]
    tools = FunctionToolRunner(runner, functions, voicebot_id="bot-9", session_id="s-9", call_info=CALL_INFO)

    found = await tools.run(ToolCall("toolu_1", "opening_hours", {"day": "monday"}))
    missing = await tools.run(ToolCall("toolu_2", "delete_everything", {}))

    assert (found.call_id, found.content, found.is_error) == ("toolu_1", '{"open":"12-23"}', False)
    payload = handler.requests[0].json()
    assert payload["parameters"] == {"day": "monday", "site": "rome"}
    assert (payload["voicebot_id"], payload["session_id"]) == ("bot-9", "s-9")
    assert missing.is_error and missing.call_id == "toolu_2"
    assert "delete_everything" in missing.content
    assert [spec.name for spec in tools.tool_specs()] == ["opening_hours"]


async def test_https_dials_the_checked_address_but_verifies_the_host_name():
    server_tls, client_tls = self_signed_tls("localhost")
    with FunctionHandlerFake(tls=server_tls) as handler:
        async with webhook_client(verify=client_tls) as client:
            tls_runner = FunctionRunner(SECRET, allow_private=True, allow_http=False, client=client)
            by_name = await call(tls_runner, f"https://localhost:{handler.port}/book")
            by_address = await call(tls_runner, f"https://127.0.0.1:{handler.port}/book")

    assert not by_name.is_error and by_name.content == '{"ok":true}'
    assert handler.requests[0].headers["host"] == f"localhost:{handler.port}"
    # The certificate names localhost only: it is checked against the URL's host, on a connection of its
    # own (not the one opened for "localhost" to the same address and port).
    assert by_address.is_error and by_address.content == "The book table service could not be reached."
    assert len(handler.requests) == 1
