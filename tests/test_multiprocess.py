"""Several processes on one PostgreSQL and one Redis, as a deployment on several machines runs: two web
processes (config/web_process.py) on two ports and two Celery workers, against the test run's embedded servers
(started once, shared), with the vendor fakes and a fake Plivo on 127.0.0.1.

- A call carried by web A is spoken to, ended and transferred through web B (live control over the Channels
  layer; Plivo fetches the transfer's XML from web B).
- A campaign dispatched by both workers at once never dials a contact twice.
- Web A killed with SIGKILL mid-call: the call's record keeps its turns and is marked ended by the reaper (run by
  a worker), with the reason.

The processes start once for the module (about 10 s on two cores); the module stays well under a minute.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from xml.etree import ElementTree

import httpx
import pytest
from django.conf import settings
from django.db import connections

from config.webserver import die_with_parent
from tests.fakes.anthropic_server import FakeAnthropic, Text, Turn
from tests.fakes.cartesia_server import FakeCartesia
from tests.fakes.deepgram_server import FakeDeepgram, silence, speech
from tests.fakes.plivo_server import CallPlan, FakeCall, FakePlivo
from tests.test_webhooks_browser import PASSWORD
from voicebots.telephony.simulator import PlivoCallSimulator

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "What time do you open tomorrow?"
REPLY = "We open at nine."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Vendors:
    """Deepgram, Anthropic and Cartesia fakes on an event loop of their own (the processes outlive any test's
    loop); every burst of caller speech is heard as QUESTION, every reply is REPLY."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="vendor-fakes", daemon=True)
        self.thread.start()
        self.llm, self.stt, self.tts = self._run(self._start())

    async def _start(self):
        llm = FakeAnthropic()
        llm.default_turn = Turn([Text(REPLY)])
        stt, tts = FakeDeepgram([QUESTION] * 1000), FakeCartesia()
        for fake in (llm, stt, tts):
            await fake.start()
        return llm, stt, tts

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def environment(self) -> dict[str, str]:
        return {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": self.llm.url,
                "DEEPGRAM_API_KEY": "test-key", "DEEPGRAM_BASE_URL": self.stt.ws_url,  # ws:// is taken as is
                "CARTESIA_API_KEY": "test-key", "CARTESIA_BASE_URL": self.tts.http_url}

    def stop(self) -> None:
        async def close():
            for fake in (self.llm, self.stt, self.tts):
                await fake.close()
        self._run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Deployment:
    """Web A, web B and two workers on the test database and the test run's Redis."""

    def __init__(self, vendors: Vendors, plivo: FakePlivo, database_url: str, queue: str) -> None:
        self.ports = {"a": free_port(), "b": free_port()}
        self.url = {name: f"http://127.0.0.1:{port}" for name, port in self.ports.items()}
        self.queue = queue
        env = {**os.environ, **vendors.environment(), "DATABASE_URL": database_url, "REDIS_URL": settings.REDIS_URL,
               # Plivo, and the answer XML's stream URLs, reach the deployment through web B's address.
               "PUBLIC_BASE_URL": self.url["b"], "PLIVO_API_BASE_URL": plivo.url, "HEARTBEAT_INTERVAL_S": "1",
               "CELERY_TASK_DEFAULT_QUEUE": queue, "SECRET_KEY": settings.SECRET_KEY, "LOG_LEVEL": "WARNING",
               "MEDIA_ROOT": str(settings.MEDIA_ROOT)}
        self.logs: dict[str, Path] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        for name, port in self.ports.items():
            self._start(f"web-{name}", [sys.executable, "-m", "config.web_process", "-b", "127.0.0.1", "-p",
                                        str(port), "config.asgi:application"], env)
        for name in ("worker-1", "worker-2"):
            self._start(name, [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "-l", "info",
                               "--concurrency", "2", "-n", f"{name}-{queue}@%h", "--without-mingle",
                               "--without-gossip"], env)
        deadline = time.monotonic() + 90
        for name in ("a", "b"):
            while True:
                try:
                    if httpx.get(f"{self.url[name]}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or self.processes[f"web-{name}"].poll() is not None:
                    raise RuntimeError(f"web {name} did not start:\n{self.log(f'web-{name}')[-3000:]}")
                time.sleep(0.2)
        for name in ("worker-1", "worker-2"):
            while "ready." not in self.log(name):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start:\n{self.log(name)[-3000:]}")
                time.sleep(0.2)

    def _start(self, name: str, command: list[str], env: dict) -> None:
        self.logs[name] = Path(os.environ.get("TMPDIR", "/tmp")) / f"voicebots-{self.queue}-{name}.log"
        with open(self.logs[name], "wb") as log:
            self.processes[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                    preexec_fn=die_with_parent)  # a killed test run leaves none

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
        for path in self.logs.values():
            path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def deployment(django_db_setup):
    from config import celery_app

    name = connections["default"].settings_dict["NAME"]
    database_url = urlunsplit(urlsplit(settings.DATABASE_URL)._replace(path="/" + name))
    vendors = Vendors()
    plivo = FakePlivo(plan=CallPlan(talk_s=0.3)).start_in_thread()
    queue = f"multi-{uuid.uuid4().hex[:8]}"
    running = Deployment(vendors, plivo, database_url, queue)
    running.vendors, running.plivo = vendors, plivo
    previous_queue = celery_app.conf.task_default_queue
    celery_app.conf.task_default_queue = queue
    yield running
    celery_app.conf.task_default_queue = previous_queue
    running.stop()
    plivo.stop()
    vendors.stop()


@pytest.fixture(autouse=True)
def _tasks_go_to_the_workers(_eager_celery):
    """Tasks queued here go to the deployment's workers, not run in the test (conftest runs them eagerly)."""
    from config import celery_app

    celery_app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def _settled_before_the_flush(transactional_db):
    """The tables are emptied after each test: first let every call end and its post-call work finish, so that
    no process holds a lock the flush would wait on."""
    yield
    wait_until(settled, timeout_s=30, what="the calls and their post-call work to finish")


def settled() -> bool:
    from voicebots.calls.models import Call

    calls = Call.objects.all()
    return not calls.exclude(status__in=Call.ENDED).exists() and not calls.filter(analysis__status="pending").exists()


@pytest.fixture
def account(deployment, transactional_db):
    from voicebots.accounts.services import create_account
    from voicebots.bots.models import Voicebot

    account, token = create_account("Multi")
    account.plivo_auth_id, account.plivo_auth_token = deployment.plivo.auth_id, deployment.plivo.auth_token
    account.save()
    bot = Voicebot.objects.create(account=account, name="Desk", welcome_message="Hello, Smile Dental!",
                                  prompt="You are a clinic receptionist.")
    return account, token, bot


def api(deployment, web: str, account_and_token, method: str, path: str, **kwargs) -> httpx.Response:
    account, token = account_and_token[:2]
    url = f"{deployment.url[web]}/v1/Account/{account.auth_id}/{path}"
    return httpx.request(method, url, auth=(account.auth_id, token), timeout=15, **kwargs)


def answer_on(deployment, web: str, account, bot, call_uuid: str) -> str:
    """Plivo's answer request to `web` (signed with the account's Plivo token); the stream URL of its XML,
    aimed at `web` too."""
    path = f"/v1/Account/{account.auth_id}/Voicebot/{bot.id}/inbound_call"
    params = {"CallUUID": call_uuid, "From": "14155550100", "To": "14155550199", "Direction": "inbound",
              "CallStatus": "in-progress"}
    headers = deployment.plivo.signature_headers(deployment.url["b"] + path, params)
    response = httpx.post(deployment.url[web] + path, data=params, headers=headers, timeout=15)
    assert response.status_code == 200, response.text
    stream = urlsplit(ElementTree.fromstring(response.content).find("Stream").text)
    return f"ws://127.0.0.1:{deployment.ports[web]}{stream.path}?{stream.query}"


def wait_until(condition, timeout_s: float = 20, what: str = "the condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def call_of(call_uuid: str):
    from voicebots.calls.models import Call

    return Call.objects.filter(call_uuid=call_uuid).first()


def bot_lines(call) -> list[str]:
    return list(call.turns.order_by("index").values_list("bot_text", flat=True))


class CallOnWeb:
    """A caller on a web process's stream (the simulator, speaking Plivo's protocol), in a thread."""

    def __init__(self, url: str, call_uuid: str, caller_audio: bytes = b"", max_duration_s: float = 40) -> None:
        self.simulator = PlivoCallSimulator(url, caller_audio=caller_audio, call_id=call_uuid, linger_s=60,
                                            max_duration_s=max_duration_s)
        self.result = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.result = asyncio.run(self.simulator.run())

    def wait(self, timeout_s: float = 30):
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the call did not end"
        return self.result


def test_a_call_on_web_a_is_spoken_to_and_ended_through_web_b(deployment, account):
    from voicebots.deployment import registry

    _, _, bot = account
    call_uuid = str(uuid.uuid4())
    caller = CallOnWeb(answer_on(deployment, "a", *account[::2], call_uuid), call_uuid)
    call = wait_until(lambda: (c := call_of(call_uuid)) and c.web_process and bot_lines(c) and c, what="the greeting")
    web_a = call.web_process
    processes = {state.process_id: state for state in registry.deployment()}
    assert web_a in processes and processes[web_a].pid == deployment.processes["web-a"].pid
    assert processes[web_a].calls == 1

    said = api(deployment, "b", account, "POST", f"Call/{call.id}/say", json={"text": "Your table is ready."})
    assert said.status_code == 202, said.text
    wait_until(lambda: "Your table is ready." in bot_lines(call), what="the line said through web B")
    ended = api(deployment, "b", account, "POST", f"Call/{call.id}/end/", json={"say": "Goodbye from the desk."})
    assert ended.status_code == 202, ended.text
    result = caller.wait()
    assert result.closed_by_server
    wait_until(lambda: call_of(call_uuid).has_ended, what="the call's record to be final")  # after the close
    call.refresh_from_db()
    assert call.end_reason == "Ended through live control."
    assert bot_lines(call) == ["Hello, Smile Dental!", "Your table is ready.", "Goodbye from the desk."]
    kinds = set(call.events.values_list("kind", flat=True))
    assert {"live_say", "live_end"} <= kinds
    assert call.events.get(kind="live_say").detail["web_process"] == web_a
    late = api(deployment, "b", account, "POST", f"Call/{call.id}/say", json={"text": "Still there?"})
    assert late.status_code == 409


def test_the_admin_page_of_a_live_call_on_web_a_has_buttons_that_reach_it_through_web_b(deployment, account,
                                                                                        browser_page):
    from voicebots.accounts.services import create_member

    page, errors = browser_page
    account_object, _, bot = account
    create_member(account_object, "desk", PASSWORD)
    call_uuid = str(uuid.uuid4())
    caller = CallOnWeb(answer_on(deployment, "a", account_object, bot, call_uuid), call_uuid)
    call = wait_until(lambda: (c := call_of(call_uuid)) and bot_lines(c) and c, what="the greeting")
    page.goto(f"{deployment.url['b']}/admin/login/?next=/admin/calls/call/{call.id}/change/")
    page.fill("#id_username", "desk")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("section.live-controls")
    page.fill("#live-say-text", "Your table is ready.")
    page.click("form.live-say button")
    page.wait_for_selector("ul.messagelist")
    assert "The bot will say it." in page.inner_text("ul.messagelist")
    wait_until(lambda: "Your table is ready." in bot_lines(call), what="the line said from the admin")
    page.fill("#live-end-say", "Goodbye from the desk.")
    page.click("form.live-end button")
    page.wait_for_selector("ul.messagelist")
    assert "The call is ending." in page.inner_text("ul.messagelist")
    assert caller.wait().closed_by_server
    page.reload()
    page.wait_for_selector("#content")
    assert page.locator("section.live-controls").count() == 0  # an ended call has no buttons
    wait_until(lambda: call_of(call_uuid).has_ended, what="the call's record to be final")
    assert bot_lines(call)[-2:] == ["Your table is ready.", "Goodbye from the desk."]
    assert errors == []


def test_the_console_page_of_a_live_call_has_the_same_buttons(deployment, account, browser_page):
    from voicebots.accounts.services import create_member

    page, errors = browser_page
    account_object, _, bot = account
    create_member(account_object, "console", PASSWORD)
    call_uuid = str(uuid.uuid4())
    caller = CallOnWeb(answer_on(deployment, "a", account_object, bot, call_uuid), call_uuid)
    call = wait_until(lambda: (c := call_of(call_uuid)) and bot_lines(c) and c, what="the greeting")
    call_page = f"/console/{account_object.auth_id}/calls/{call.id}/"
    page.goto(f"{deployment.url['b']}/admin/login/?next={call_page}")
    page.fill("#id_username", "console")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#call-actions section.live-controls")
    page.fill("#live-say-text", "Sorry, one moment please.")
    page.check("form.live-say input[name=interrupt]")
    page.click("form.live-say button")
    page.wait_for_selector("ul.live-messages")
    assert "The bot will say it." in page.inner_text("ul.live-messages")
    assert page.url.endswith(call_page)
    wait_until(lambda: "Sorry, one moment please." in bot_lines(call), what="the line said from the console")
    assert call.events.get(kind="live_say").detail["interrupt"] is True
    page.fill("#live-end-say", "")
    page.click("form.live-end button")
    page.wait_for_selector("ul.live-messages")
    assert "The call is ending." in page.inner_text("ul.live-messages")
    assert caller.wait().closed_by_server
    assert errors == []


def test_a_call_on_web_a_is_transferred_through_web_b_warm(deployment, account):
    _, _, bot = account
    call_uuid = str(uuid.uuid4())
    deployment.plivo.calls.append(FakeCall(str(uuid.uuid4()), call_uuid, {}, status="in-progress"))
    caller = CallOnWeb(answer_on(deployment, "a", *account[::2], call_uuid), call_uuid, max_duration_s=20)
    call = wait_until(lambda: (c := call_of(call_uuid)) and bot_lines(c) and c, what="the greeting")
    moved = api(deployment, "b", account, "POST", f"Call/{call.id}/transfer",
                json={"to": "+14155550123", "summary": "Ada wants to move her cleaning to Friday."})
    assert moved.status_code == 202, moved.text
    fake_call = next(c for c in deployment.plivo.calls if c.call_uuid == call_uuid)
    wait_until(lambda: fake_call.announcements, what="Plivo to fetch the transfer and its announcement")
    url, xml = fake_call.transfers[0]
    assert url.startswith(deployment.url["b"] + "/plivo/transfer/")  # the redirect is served by web B
    assert ElementTree.fromstring(xml).find("Dial/Number").text == "14155550123"
    assert ElementTree.fromstring(fake_call.announcements[0]).find("Speak").text == \
        "Ada wants to move her cleaning to Friday. Press 1 to take the call."
    assert deployment.plivo.callback_errors == []
    caller.simulator.max_duration_s = 0  # the caller's stream stops, as Plivo's does after a transfer
    caller.wait()
    wait_until(lambda: call_of(call_uuid).has_ended, what="the transferred call's end")


def test_a_campaign_dialed_by_both_workers_never_dials_a_contact_twice(deployment, account):
    from voicebots.campaigns.models import Attempt, Campaign
    from voicebots.campaigns.tasks import dispatch_campaign

    _, _, bot = account
    everywhere = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    campaign = api(deployment, "b", account, "POST", "Campaign/", json={
        "name": "Reminders", "voicebot_id": str(bot.id), "caller_ids": ["+14155550100"],
        "starts_at": "2025-01-01T00:00:00Z", "ends_at": "2099-01-01T00:00:00Z", "timezone": "UTC",
        "calling_windows": everywhere, "max_concurrent_calls": 8}).json()
    contacts = 24
    rows = "phone\n" + "".join(f"+1212555{n:04d}\n" for n in range(contacts))
    uploaded = api(deployment, "a", account, "POST", f"Campaign/{campaign['id']}/contacts",
                   files={"file": ("contacts.csv", rows.encode())})
    assert uploaded.status_code == 201, uploaded.text
    before = len(deployment.plivo.calls)
    assert api(deployment, "b", account, "POST", f"Campaign/{campaign['id']}/schedule").status_code == 200
    for _ in range(10):  # dispatchers racing on both workers, as beat and ended calls make them
        dispatch_campaign.delay(campaign["id"])
    wait_until(lambda: Campaign.objects.get(pk=campaign["id"]).status == "completed", timeout_s=60,
               what="the campaign to complete")
    dialed = [call.params["to"] for call in deployment.plivo.calls[before:]]
    assert sorted(dialed) == sorted(f"1212555{n:04d}" for n in range(contacts))  # each once
    assert Attempt.objects.filter(contact__campaign_id=campaign["id"]).count() == contacts
    dials = {name: deployment.log(name).count("campaigns.dial[") for name in ("worker-1", "worker-2")}
    assert all(count > 0 for count in dials.values()), dials  # both workers dialed


def test_web_a_killed_mid_call_leaves_its_turns_and_a_record_marked_ended_by_the_reaper(deployment, account):
    from voicebots.deployment.tasks import reap_orphaned_calls

    _, _, bot = account
    call_uuid = str(uuid.uuid4())
    question = speech(900) + silence(1500)
    CallOnWeb(answer_on(deployment, "a", *account[::2], call_uuid), call_uuid, caller_audio=question)
    call = wait_until(lambda: (c := call_of(call_uuid)) and len(bot_lines(c)) == 2 and c, what="a turn answered")
    deployment.processes["web-a"].send_signal(signal.SIGKILL)
    deployment.processes["web-a"].wait(10)
    time.sleep(3.5)  # its heartbeat expires (three intervals of 1 s)
    reap_orphaned_calls.delay()
    wait_until(lambda: call_of(call_uuid).has_ended, timeout_s=30, what="the reaper")
    call.refresh_from_db()
    assert call.web_process in call.end_reason and "reaper" in call.end_reason
    assert call.events.filter(kind="process_lost").exists()
    turns = list(call.turns.order_by("index").values_list("caller_text", "bot_text"))
    assert turns == [("", "Hello, Smile Dental!"), (QUESTION, REPLY)]  # nothing the caller heard is lost
    assert "reap_orphaned_calls" in deployment.log("worker-1") + deployment.log("worker-2")
