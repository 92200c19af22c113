"""The voice playground in a real browser: Debian's Chromium driven by Playwright, its microphone a fake device
playing a WAV made with espeak-ng, against the real web server (Daphne, in a process of its own) and the vendor
fakes. Press Talk: the bot greets, the question is answered, a barge-in stops playback, Hang up ends the call,
and the Call record has the turns and timings. No JavaScript console error is allowed.
"""
from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests import browser as browsers
from tests.fakes.anthropic_server import FakeAnthropic, Text, Turn
from tests.fakes.cartesia_server import FakeCartesia
from tests.fakes.deepgram_server import FakeDeepgram
from tests.live_app import LiveApp
from voicebots.voice.audio import resample

# Under `pytest -n`, one worker runs the whole module (tests/scheduling.py): its tests share a web server.
pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM_ARGS = [*browsers.FAKE_MICROPHONE, browsers.AUTOPLAY]  # besides the project's flags
RATE = 16000
QUESTION, INTERRUPTION = "When are you open?", "Stop please."
LONG_REPLY = ("We open at eight. On weekdays the clinic opens at eight in the morning and at nine on Saturdays, "
              "and we close at six in the evening except on Fridays when we close at four.")


def espeak(text: str, folder: Path) -> np.ndarray:
    path = folder / "clip.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(path), text], check=True, capture_output=True)
    with wave.open(str(path), "rb") as clip:
        samples = np.frombuffer(clip.readframes(clip.getnframes()), dtype="<i2")
        return resample(samples, clip.getframerate(), RATE)


def caller_wav(folder: Path) -> Path:
    """What the fake microphone says: quiet while the bot greets, the question, and while the long answer plays,
    an interruption; then quiet."""
    quiet = lambda seconds: np.zeros(int(seconds * RATE))  # noqa: E731
    audio = np.concatenate([quiet(3.0), espeak(QUESTION, folder), quiet(3.0), espeak(INTERRUPTION, folder),
                            quiet(8.0)])
    path = folder / "caller.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(np.clip(audio, -32768, 32767).astype("<i2").tobytes())
    return path


@pytest.fixture(scope="module")
def vendors():
    """One set of vendor fakes for the module's web server; a test scripts what its call needs."""
    llm, stt, tts = FakeAnthropic(), FakeDeepgram(), FakeCartesia()
    for fake in (llm, stt, tts):
        fake.start_in_thread()
    yield llm, stt, tts
    for fake in (llm, stt, tts):
        fake.stop()


@pytest.fixture(scope="module")
def app(django_db_setup, vendors):
    """One web server for the module's tests (starting one takes seconds); each test's data is its own."""
    llm, stt, tts = vendors
    with LiveApp({"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": llm.url, "DEEPGRAM_API_KEY": "test-key",
                  "DEEPGRAM_BASE_URL": stt.ws_url.replace("ws://", "http://"), "CARTESIA_API_KEY": "test-key",
                  "CARTESIA_BASE_URL": tts.http_url}) as live:
        yield live


@pytest.fixture
def bot_and_member(api):
    from voicebots.accounts.services import create_member

    create_member(api.account, "talker", "a-long-password-123")
    return api.post("Voicebot/", {"name": "Desk", "welcome_message": "Hello!"}).json()


def playground_page(context, app, bot_id, problems: list[str]):
    """The bot's playground, signed in through the admin's login form; console errors, page errors and failed
    requests go to `problems`."""
    page = context.new_page()
    browsers.watch(page, problems, failed_requests=True)
    browsers.sign_in(page, f"{app.url}/admin/login/?next=/playground/{bot_id}/", "talker", "a-long-password-123")
    page.wait_for_url(f"**/playground/{bot_id}/")
    return page


def test_talking_to_a_bot_from_the_browser(app, vendors, bot_and_member, tmp_path):
    from voicebots.calls.models import Call

    llm, stt, _ = vendors
    llm.script(Turn([Text(LONG_REPLY)]), Turn([Text("Sure.")]))
    stt.script(QUESTION, INTERRUPTION)
    bot = bot_and_member
    wav = caller_wav(tmp_path)
    problems: list[str] = []
    with browsers.chromium(*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}%noloop") as browser:
        page = playground_page(browser.new_context(), app, bot["id"], problems)

        page.click("#talk")
        page.wait_for_selector("#voice[data-state=live]", timeout=10_000)
        page.wait_for_function("document.querySelectorAll('#voice-turns tbody tr').length >= 1", timeout=10_000)
        assert page.text_content("#voice-transcript .msg.bot") == "Hello!"  # the bot greets
        assert int(page.get_attribute("#voice", "data-audio-bytes")) > 0
        # The question is answered, then cut off by the interruption: the page drops what it had queued.
        page.wait_for_function("Number(document.getElementById('voice').dataset.clears) >= 1", timeout=20_000)
        assert int(page.get_attribute("#voice", "data-last-clear-dropped-ms")) > 0
        page.wait_for_selector("#voice-transcript .msg.cut", timeout=10_000)
        page.wait_for_function("document.querySelectorAll('#voice-turns tbody tr').length >= 3", timeout=15_000)
        # The transcript hears of the interruption's words by a message of its own, which may come after the turn.
        page.wait_for_function("document.querySelectorAll('#voice-transcript .msg.caller').length >= 2",
                               timeout=10_000)
        callers = page.locator("#voice-transcript .msg.caller").all_text_contents()
        assert callers[:2] == [QUESTION, INTERRUPTION]
        page.click("#hang-up")
        page.wait_for_selector("#voice[data-state=ended]", timeout=5_000)
        assert page.text_content("#voice-status") == "The caller hung up."
        call_id = page.get_attribute("#voice", "data-call-id")

    assert problems == [], problems
    call = Call.objects.get(pk=call_id)
    assert call.direction == "web" and call.has_ended and call.end_reason == "The caller hung up."
    turns = list(call.turns.order_by("index"))
    assert [turn.caller_text for turn in turns[:3]] == ["", QUESTION, INTERRUPTION]
    assert turns[0].bot_text == "Hello!"
    assert turns[1].interrupted and turns[1].bot_text.startswith("We open at eight.")  # what was heard
    assert len(turns[1].bot_text) < len(LONG_REPLY) and LONG_REPLY.startswith(turns[1].bot_text)
    assert turns[2].bot_text == "Sure." and not turns[2].interrupted
    for turn in turns[1:3]:
        assert turn.timings["latency_ms"] is not None and turn.timings["platform_ms"] is not None, turn.timings
    assert "Traceback" not in app.output(), app.output()


@pytest.mark.parametrize("device, permission, message", [
    ("fake", [], "Microphone access was denied"),  # a microphone, but the user said no
    ("none", ["microphone"], "No microphone was found"),  # allowed, but there is none (this machine has none)
])
def test_a_denied_or_missing_microphone_is_explained(app, bot_and_member, device, permission, message):
    args = [arg for arg in CHROMIUM_ARGS if arg != "--use-fake-ui-for-media-stream"]
    if device == "none":
        args.remove("--use-fake-device-for-media-stream")
    problems: list[str] = []
    with browsers.chromium(*args) as browser:
        page = playground_page(browser.new_context(permissions=permission), app, bot_and_member["id"], problems)
        page.click("#talk")
        page.wait_for_selector("#voice-status.error", timeout=10_000)
        assert message in page.text_content("#voice-status")
        assert page.get_attribute("#voice", "data-state") == "ended"
        assert page.is_enabled("#talk") and not page.is_enabled("#hang-up")  # ready to try again
    assert problems == [], problems


# The page's sockets open 1.5 s late, as on a slow network or a busy server; until then they refuse to send, as
# a connecting WebSocket does.
SLOW_SOCKETS = """
const Native = window.WebSocket;
window.WebSocket = class extends Native {
  constructor(...args) {
    super(...args);
    this.held = true;
    super.addEventListener("open", () => setTimeout(() => {
      this.held = false;
      if (this.openHandler) this.openHandler(new Event("open"));
    }, 1500));
  }
  get readyState() { return this.held ? Native.CONNECTING : super.readyState; }
  set onopen(handler) { this.openHandler = handler; }
  get onopen() { return this.openHandler; }
  send(data) {
    if (this.held) throw new DOMException("Failed to execute 'send' on 'WebSocket': Still in CONNECTING state.",
                                          "InvalidStateError");
    super.send(data);
  }
};
"""


def test_chatting_with_a_bot_on_the_same_page(app, vendors, bot_and_member, browser):
    """The chat half of the page (playground.js, on the same shared script as the voice half): the question, sent
    before the page's socket is open, and the streamed answer appear as messages, the timings fill in, no
    console error."""
    llm, _, _ = vendors
    llm.script(Turn([Text("We open ", "at eight.")]))
    problems: list[str] = []
    context = browser.new_context()
    context.add_init_script(SLOW_SOCKETS)
    page = playground_page(context, app, bot_and_member["id"], problems)
    page.fill("#message", QUESTION)
    page.click("#composer button[type=submit]")
    try:
        page.wait_for_function("document.getElementById('timings').textContent.length > 0", timeout=10_000)
    except PlaywrightTimeoutError:
        shown = page.locator("#messages .msg").all_text_contents(), page.text_content("#status")
        raise AssertionError(f"no timings; the page shows {shown}, problems {problems}, "
                             f"{len(llm.requests)} model requests; the server said:\n{app.output()}") from None
    assert page.locator("#messages .msg.user").all_text_contents() == [QUESTION]
    assert page.locator("#messages .msg.bot").all_text_contents() == ["We open at eight."]
    assert page.text_content("#status") == ""
    assert problems == [], problems
