"""Post-call analysis: the bot's settings in the API, and the analysis of ended calls against the fake
Anthropic API, or the OpenAI-compatible one for bots on it (summary, success verdict, extraction validated by
JSON Schema, one re-ask, retries)."""
import json

import pytest

from tests.fakes.anthropic_server import Text, Turn
from voicebots.analysis import services as analysis
from voicebots.bots.models import Voicebot
from voicebots.calls import services as calls
from voicebots.calls.models import Call, CallTurn
from voicebots.webhooks import services as webhooks
from voicebots.webhooks.models import WebhookEvent

SCHEMA = {"type": "object", "properties": {
    "appointment_date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
    "callback_number": {"type": ["string", "null"]}}, "required": ["appointment_date"]}
GOOD = {"summary": "The caller booked a cleaning for 4 May.", "success": True,
        "success_reason": "An appointment was booked.", "data": {"appointment_date": "2026-05-04",
                                                                 "callback_number": "+14155550123"}}


# --- Settings on the Voicebot ------------------------------------------------------------------------


def test_a_bot_has_default_analysis_settings(api):
    bot = api.post("Voicebot/", {"name": "Desk"}).json()
    assert bot["analysis"] == {"summary": True, "success_criteria": "", "extraction_schema": None}


def test_analysis_settings_are_stored_and_patched_key_by_key(api):
    bot = api.post("Voicebot/", {"name": "Desk", "analysis": {
        "success_criteria": "An appointment is booked.", "extraction_schema": SCHEMA}}).json()
    assert bot["analysis"]["extraction_schema"] == SCHEMA and bot["analysis"]["summary"] is True
    assert api.patch(f"Voicebot/{bot['id']}", {"analysis": {"summary": False}}).status_code == 204
    shown = api.get(f"Voicebot/{bot['id']}").json()["analysis"]
    assert shown == {"summary": False, "success_criteria": "An appointment is booked.", "extraction_schema": SCHEMA}
    assert api.patch(f"Voicebot/{bot['id']}", {"analysis": {"extraction_schema": None}}).status_code == 204
    assert api.get(f"Voicebot/{bot['id']}").json()["analysis"]["extraction_schema"] is None


@pytest.mark.parametrize("_case, analysis_settings, field, expected", [
    ("misspelt type", {"extraction_schema": {"type": "object", "properties": {"x": {"type": "strin"}}}},
     "analysis.extraction_schema", "Not a valid JSON Schema: 'strin' is not valid"),
    ("not an object schema", {"extraction_schema": {"type": "array"}}, "analysis.extraction_schema",
     '"type": "object"'),
    ("not a schema at all", {"extraction_schema": "a date"}, "analysis.extraction_schema", "JSON Schema object"),
    ("bad required", {"extraction_schema": {"type": "object", "required": "date"}}, "analysis.extraction_schema",
     "(at required)"),
    ("unknown key", {"summary": True, "sumary": False}, "analysis.sumary", "Unknown field"),
    ("summary not a bool", {"summary": "maybe"}, "analysis.summary", "valid boolean"),
    ("not an object", ["summary"], "analysis", "Expected an object"),
])
def test_invalid_analysis_settings_are_a_400_naming_the_problem(api, _case, analysis_settings, field, expected):
    response = api.post("Voicebot/", {"name": "Desk", "analysis": analysis_settings})
    assert response.status_code == 400
    details = response.json()["details"]
    assert field in details, details
    assert expected in details[field][0], details


# --- Analysis of a call ------------------------------------------------------------------------------


def ended_call(account, *, analysis_settings=None, turns=(("Hi, I'd like a cleaning on May 4th.", "Booked."),),
               direction="inbound"):
    bot = Voicebot.objects.create(account=account, name="Smile Dental", prompt="You book dental appointments.",
                                  analysis=analysis_settings or {})
    call = Call.objects.create(account=account, voicebot=bot, direction=direction, status="in-progress",
                               from_number="+14155550123", to_number="+14155550100")
    for index, (caller, agent) in enumerate(turns):
        CallTurn.objects.create(call=call, index=index, caller_text=caller, bot_text=agent)
    return calls.finalize(call, reason="The caller hung up.")


def answer(payload) -> Turn:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return Turn([Text(text[:10], text[10:])])


def analysis_of(call):
    call.refresh_from_db()
    return call.analysis


def test_an_ended_call_is_pending_and_then_analyzed(api, fake_anthropic):
    call = ended_call(api.account, analysis_settings={"success_criteria": "An appointment is booked.",
                                                      "extraction_schema": SCHEMA})
    assert call.analysis["status"] == "pending"
    fake_anthropic.script(answer(GOOD))
    assert analysis.run(str(call.id)) is None
    result = analysis_of(call)
    assert result["status"] == "done" and result["error"] is None and result["completed_at"]
    assert result["summary"] == GOOD["summary"] and result["success"] is True
    assert result["success_reason"] == GOOD["success_reason"] and result["data"] == GOOD["data"]
    request = fake_anthropic.requests[0].body
    prompt = request["messages"][0]["content"]
    assert "Caller: Hi, I'd like a cleaning on May 4th." in prompt and "Agent: Booked." in prompt
    assert "An appointment is booked." in prompt and '"appointment_date"' in prompt
    assert "You book dental appointments." in prompt
    assert "JSON" in request["system"][0]["text"]
    # Shown on the Call object.
    shown = api.get(f"Call/{call.id}").json()
    assert shown["analysis"]["status"] == "done" and shown["analysis"]["data"] == GOOD["data"]
    # Only once: a second run changes nothing and asks nothing.
    assert analysis.run(str(call.id)) is None and len(fake_anthropic.requests) == 1


def test_browser_calls_are_analyzed_like_phone_calls(api, fake_anthropic, django_capture_on_commit_callbacks):
    fake_anthropic.script(answer({"summary": "A playground test call."}))
    with django_capture_on_commit_callbacks(execute=True):
        call = ended_call(api.account, direction="web")
    result = analysis_of(call)  # the task ran (in-process in tests) once the call's end was committed
    assert result["status"] == "done" and result["summary"] == "A playground test call."
    assert "a voice call from a web browser" in fake_anthropic.requests[0].body["messages"][0]["content"]


def test_code_fences_around_the_answer_are_tolerated(api, fake_anthropic):
    call = ended_call(api.account)
    fake_anthropic.script(answer('```json\n{"summary": "A short call."}\n```'))
    analysis.run(str(call.id))
    assert analysis_of(call)["summary"] == "A short call."


def test_an_answer_that_does_not_fit_the_schema_is_sent_back_once_with_the_problem(api, fake_anthropic):
    call = ended_call(api.account, analysis_settings={"extraction_schema": SCHEMA})
    wrong = {**GOOD, "data": {"appointment_date": "May 4th"}}
    fake_anthropic.script(answer(wrong), answer(GOOD))
    analysis.run(str(call.id))
    assert analysis_of(call)["status"] == "done" and analysis_of(call)["data"] == GOOD["data"]
    second_prompt = fake_anthropic.requests[1].body["messages"][0]["content"]
    assert "Your previous reply was" in second_prompt and "May 4th" in second_prompt
    assert "data/appointment_date" in second_prompt and "does not match" in second_prompt


def test_two_unusable_answers_fail_the_analysis_with_the_reason(api, fake_anthropic):
    call = ended_call(api.account, analysis_settings={"success_criteria": "Booked."})
    fake_anthropic.script(answer("I think it went well."), answer({"summary": "ok", "success": "yes",
                                                                   "success_reason": "x"}))
    analysis.run(str(call.id))
    result = analysis_of(call)
    assert result["status"] == "failed" and result["summary"] is None
    assert "unusable twice" in result["error"] and "success: 'yes' is not of type 'boolean'" in result["error"]


def test_a_model_that_is_overloaded_is_tried_again_later_then_failed(api, fake_anthropic, settings):
    settings.ANALYSIS_RETRY_DELAYS = [10, 60]
    call = ended_call(api.account)
    fake_anthropic.script(*[Turn(status=529) for _ in range(6)])  # the provider itself tries twice per run
    assert analysis.run(str(call.id), attempt=0) == 10
    pending = analysis_of(call)
    assert pending["status"] == "pending" and "overloaded" in pending["error"] and "10 s" in pending["error"]
    assert analysis.run(str(call.id), attempt=1) == 60
    assert analysis.run(str(call.id), attempt=2) is None
    failed = analysis_of(call)
    assert failed["status"] == "failed" and "overloaded" in failed["error"]


def test_a_model_that_recovers_on_a_later_try_completes_the_analysis(api, fake_anthropic):
    call = ended_call(api.account)
    fake_anthropic.script(Turn(status=500), Turn(status=500), answer({"summary": "Fine."}))
    assert analysis.run(str(call.id), attempt=0) is not None
    assert analysis.run(str(call.id), attempt=1) is None
    assert analysis_of(call)["status"] == "done" and analysis_of(call)["error"] is None


def test_a_rejected_api_key_fails_at_once(api, fake_anthropic, settings):
    settings.ANTHROPIC_API_KEY = "wrong"
    call = ended_call(api.account)
    assert analysis.run(str(call.id)) is None
    assert analysis_of(call)["status"] == "failed" and "API key" in analysis_of(call)["error"]


def test_no_key_at_all_fails_and_says_which(api, settings):
    settings.ANTHROPIC_API_KEY = ""
    call = ended_call(api.account)
    analysis.run(str(call.id))
    assert analysis_of(call) | {"completed_at": None} == analysis.state(
        "failed", error="ANTHROPIC_API_KEY is not configured on this server.") | {"completed_at": None}


@pytest.mark.parametrize("_case, kwargs, reason", [
    ("silent caller", {"turns": (("", "Hello, Smile Dental?"),)}, "The caller said nothing"),
    ("analysis off", {"analysis_settings": {"summary": False}}, "turned off"),
])
def test_calls_with_nothing_to_analyze_are_skipped_without_asking_the_model(api, fake_anthropic, _case, kwargs,
                                                                             reason):
    call = ended_call(api.account, **kwargs)
    analysis.run(str(call.id))
    result = analysis_of(call)
    assert result["status"] == "skipped" and reason in result["error"]
    assert fake_anthropic.requests == []


def test_call_ended_then_call_analyzed_webhooks_carry_the_call(api, fake_anthropic, settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    webhooks.create_endpoint(api.account, url="https://hooks.example.com/x", events=["call.ended", "call.analyzed"])
    call = ended_call(api.account)
    fake_anthropic.script(answer({"summary": "Booked a cleaning."}))
    analysis.run(str(call.id))
    ended, analyzed = WebhookEvent.objects.order_by("created_at")
    assert (ended.type, analyzed.type) == ("call.ended", "call.analyzed")
    ended_body, analyzed_body = json.loads(ended.body), json.loads(analyzed.body)
    assert ended_body["data"]["id"] == str(call.id) and ended_body["data"]["analysis"]["status"] == "pending"
    assert ended_body["data"]["turns"][0]["caller_text"].startswith("Hi, I'd like")
    assert analyzed_body["data"]["analysis"]["summary"] == "Booked a cleaning."


def test_finalizing_twice_queues_one_analysis_and_one_call_ended(api, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_HTTP = True
    webhooks.create_endpoint(api.account, url="https://hooks.example.com/x", events=["call.ended"])
    with django_capture_on_commit_callbacks() as callbacks:
        call = ended_call(api.account)
        calls.finalize(call, status="completed", hangup_cause="NORMAL_CLEARING", duration_seconds=12)
    assert WebhookEvent.objects.filter(type="call.ended").count() == 1
    assert len(callbacks) == 2  # the analysis task and the webhook sender, once each


def test_the_sweep_queues_lost_analyses_again_and_gives_up_after_a_day(api, fake_anthropic):
    from datetime import timedelta

    from django.utils import timezone

    lost = ended_call(api.account)
    Call.objects.filter(pk=lost.pk).update(ended_at=timezone.now() - timedelta(minutes=20))
    ancient = ended_call(api.account)
    Call.objects.filter(pk=ancient.pk).update(ended_at=timezone.now() - timedelta(days=2))
    fresh = ended_call(api.account)
    fake_anthropic.default_turn = answer({"summary": "Recovered."})
    assert analysis.sweep() == 1  # eager: run at once
    assert analysis_of(lost)["summary"] == "Recovered."
    assert analysis_of(ancient)["status"] == "failed" and "lost" in analysis_of(ancient)["error"]
    assert analysis_of(fresh)["status"] == "pending"  # its task may still be on the way


# --- On the bot's own provider -------------------------------------------------------------------------


def test_a_bot_on_an_openai_compatible_model_is_analyzed_by_it(api, fake_openai, fake_anthropic):
    from tests.fakes import openai_server

    call = ended_call(api.account, analysis_settings={"extraction_schema": SCHEMA})
    Voicebot.objects.filter(pk=call.voicebot_id).update(llm_provider="openai", llm_model="qwen2.5:7b")
    text = json.dumps(GOOD)
    fake_openai.script(openai_server.Turn([openai_server.Text(text)]))

    assert analysis.run(str(call.id)) is None

    result = analysis_of(call)
    assert result["status"] == "done" and result["data"] == GOOD["data"]
    body = fake_openai.chat_requests[0].body
    assert body["model"] == "qwen2.5:7b" and "stream" not in body and "tools" not in body
    assert body["messages"][0]["role"] == "system" and "JSON" in body["messages"][0]["content"]
    assert "Caller: Hi, I'd like a cleaning on May 4th." in body["messages"][1]["content"]
    assert fake_anthropic.requests == []


def test_analysis_provider_and_model_can_be_set_for_the_whole_server(api, fake_openai, fake_anthropic, settings):
    from tests.fakes import openai_server

    settings.ANALYSIS_LLM_PROVIDER, settings.ANALYSIS_LLM_MODEL = "openai", "gpt-4.1-mini"
    call = ended_call(api.account)  # an Anthropic bot
    fake_openai.script(openai_server.Turn([openai_server.Text(json.dumps({"summary": "Short."}))]))

    analysis.run(str(call.id))

    assert analysis_of(call)["summary"] == "Short."
    assert fake_openai.chat_requests[0].body["model"] == "gpt-4.1-mini" and fake_anthropic.requests == []


def test_an_unknown_stored_provider_fails_the_analysis_and_says_why(api):
    call = ended_call(api.account)
    Voicebot.objects.filter(pk=call.voicebot_id).update(llm_provider="mystery")

    analysis.run(str(call.id))

    assert analysis_of(call)["error"] == ('The analysis model cannot be used: "mystery" is not a supported LLM '
                                         'provider; supported: anthropic, openai.')
