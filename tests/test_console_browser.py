"""The console in a real browser (Debian's chromium driven by Playwright): log in, read the overview, open a
call, play its recording, click a turn and see the player seek there; no JavaScript error on the way.

Set CONSOLE_SCREENSHOT=path to save a picture of the call page (the README's docs/console-call.png)."""
import os
from datetime import timedelta

import pytest

from tests import browser as browsers
from tests.test_console import turn
from tests.test_recordings import recorded_call
from voicebots.accounts.services import create_member
from voicebots.calls.models import Call, CallEvent, CallTurn

pytestmark = [pytest.mark.django_db(transaction=True), browsers.needs_chromium]


@pytest.fixture
def inspected_call(api):
    """A recorded call of 12 s with a greeting, two answered questions (one slow, with a tool and a passage),
    a DTMF key and an analysis."""
    create_member(api.account, "ada", "a-long-password-1")
    call = recorded_call(api.account, seconds=12.0, caller_spans=[(1.8, 4.0), (6.6, 8.4)],
                         bot_spans=[(0.0, 1.6), (5.6, 6.4), (9.2, 11.0)])
    started = call.recording.started_at
    Call.objects.filter(pk=call.pk).update(from_number="+14155550100", to_number="+14155550199",
                                           duration_seconds=12, end_reason="The caller hung up.",
                                           analysis={"status": "done", "summary": "The caller booked a cleaning "
                                                     "for Monday at nine.", "success": True,
                                                     "data": {"day": "Monday", "time": "09:00"}})
    turn(call, 0, "", "Hello, Smile Dental, how can I help?", at=started)
    turn(call, 1, "I'd like to book a cleaning for Monday.", "You are booked for Monday at nine.", 1840,
         stt_ms=160, llm_ms=1410, tts_ms=95, platform_ms=175, at=started + timedelta(seconds=4.2),
         tools=[{"id": "t1", "name": "book_visit", "input": {"day": "Monday", "time": "09:00"},
                 "result": '{"booked": true, "ref": "A-1042"}', "is_error": False, "duration_ms": 820.0}])
    CallTurn.objects.filter(call=call, index=1).update(passages=[
        {"name": "clinic-faq.md", "page": None, "score": 0.71, "knowledgebase_id": "kb",
         "text": "Cleanings take 45 minutes and are booked Monday to Saturday."}])
    turn(call, 2, "Great, where do I park?", "Free parking is behind the building.", 612, stt_ms=150,
         llm_ms=330, tts_ms=88, platform_ms=44, at=started + timedelta(seconds=8.6))
    CallEvent.objects.create(call=call, kind="dtmf", detail={"digit": "1"})
    return call


def test_log_in_read_the_overview_open_a_call_play_it_and_seek_by_turn(live_server, api, inspected_call, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = browsers.watch(page)
    browsers.sign_in(page, f"{live_server.url}/console/", "ada", "a-long-password-1")
    page.wait_for_url(f"**/console/{api.account.auth_id}/")
    assert page.inner_text("[data-total=calls]") == "1"
    page.wait_for_selector("#chart-calls .uplot")  # the charts drew
    page.wait_for_selector("#chart-latency .uplot")

    page.click("nav >> text=Calls")
    page.click(f"a[href$='/calls/{inspected_call.id}/']")
    page.wait_for_selector("#waveform")
    duration = page.wait_for_function(
        "() => { const a = document.getElementById('audio'); return a.duration > 0 && a.duration; }").json_value()
    assert abs(duration - 12.0) < 0.1
    assert page.evaluate("() => document.getElementById('audio').buffered.length") >= 0
    page.evaluate("() => document.getElementById('audio').play()")
    page.wait_for_function("() => document.getElementById('audio').currentTime > 0.2")  # it plays

    target = page.locator(".turn[data-turn='2']")
    seek = float(target.get_attribute("data-seek"))
    assert 6.0 < seek < 6.7  # where the caller's question began (6.6 s), not where their speech ended
    target.click()
    position = page.evaluate("() => document.getElementById('audio').currentTime")
    assert seek - 0.05 <= position <= seek + 1.0
    page.wait_for_selector(".turn[data-turn='2'].current")
    assert "slowest" in page.locator(".turn[data-turn='1']").get_attribute("class")
    assert "LLM 1410" in page.inner_text(".turn[data-turn='1'] .latency")

    if os.environ.get("CONSOLE_SCREENSHOT"):
        page.evaluate("() => document.getElementById('audio').pause()")
        page.locator(".turn[data-turn='1'] details.tool").evaluate("el => el.open = true")
        page.screenshot(path=os.environ["CONSOLE_SCREENSHOT"], full_page=True)
    assert errors == []


def test_the_calls_list_filter_form_finds_calls_by_their_words(live_server, api, inspected_call,
                                                                 browser):
    page = browser.new_page()
    errors = browsers.watch(page)
    browsers.sign_in(page, f"{live_server.url}/console/{api.account.auth_id}/calls/", "ada", "a-long-password-1")
    page.fill("#id_text", "park")
    page.click("form.filters button[type=submit]")
    assert page.locator("table.calls tbody tr").count() == 1 and str(inspected_call.id) in page.content()
    page.fill("#id_text", "nothing-like-this")
    page.click("form.filters button[type=submit]")
    assert "No calls match." in page.inner_text("table.calls")
    assert errors == []
