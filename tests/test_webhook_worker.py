"""Deliveries and analysis through real Celery worker processes over the real (embedded) Redis broker,
to a real local endpoint; including a worker killed in the middle of a delivery."""
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import standardwebhooks
from django.conf import settings

from tests.fakes.anthropic_server import Text, Turn
from tests.fakes.http_handler import FunctionHandlerFake, Reply
from tests.test_celery_worker import database_url
from voicebots.bots.models import Voicebot
from voicebots.calls import services as calls
from voicebots.calls.models import Call, CallTurn
from voicebots.webhooks import services as webhooks
from voicebots.webhooks.models import WebhookAttempt, WebhookDelivery

ROOT = Path(__file__).resolve().parent.parent
WAIT_S = 60  # a worker starting on a loaded machine takes seconds


@pytest.fixture
def receiver(settings):
    endpoint = FunctionHandlerFake().start_in_thread()
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    yield endpoint
    endpoint.stop()


@pytest.fixture
def workers(transactional_db):
    """Starts workers on a queue of their own, which the tasks they queue go to as well (a development
    worker sharing the broker cannot take their tasks); all are stopped at the end."""
    from config import celery_app

    queue = f"test-{uuid.uuid4().hex[:8]}"
    started: list[subprocess.Popen] = []

    def start(**env_settings) -> subprocess.Popen:
        env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
               "CELERY_TASK_DEFAULT_QUEUE": queue,
               "WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",
               **{name: str(value) for name, value in env_settings.items()}}
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "--pool", "solo",
             "-l", "warning", "-n", f"{queue}-{len(started)}@%h"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)
        return process

    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = queue
    yield start
    celery_app.conf.task_default_queue = "celery"
    for process in started:
        if process.poll() is None:
            process.terminate()
    for process in started:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(condition, timeout=WAIT_S, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout} s waiting for {condition.__doc__ or condition}")


def test_a_call_end_is_delivered_and_analyzed_through_a_real_worker(api, receiver, workers, fake_anthropic):
    fake_anthropic.default_turn = Turn([Text('{"summary": "The caller asked ', 'about opening hours."}')])
    workers(ANTHROPIC_API_KEY=settings.ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL=fake_anthropic.url)
    endpoint, secret = webhooks.create_endpoint(api.account, url=receiver.url_for("/hook"),
                                                events=["call.ended", "call.analyzed"])
    bot = Voicebot.objects.create(account=api.account, name="Desk")
    call = Call.objects.create(account=api.account, voicebot=bot, status="in-progress", from_number="+14155550123")
    CallTurn.objects.create(call=call, index=0, caller_text="When do you open?", bot_text="At nine.")
    calls.finalize(call, reason="The caller hung up.")

    def both_arrived():
        """call.ended and call.analyzed at the endpoint"""
        return len(receiver.requests) >= 2
    wait_for(both_arrived)
    payloads = [standardwebhooks.Webhook(secret).verify(r.body, r.headers) for r in receiver.requests]
    assert [p["type"] for p in payloads] == ["call.ended", "call.analyzed"]
    assert payloads[0]["data"]["turns"][0]["caller_text"] == "When do you open?"
    assert payloads[1]["data"]["analysis"]["summary"] == "The caller asked about opening hours."
    wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").count() == 2)
    time.sleep(0.5)
    assert len(receiver.requests) == 2  # none sent twice


def test_a_worker_killed_mid_delivery_leaves_a_delivery_that_is_picked_up_again(api, receiver, workers):
    from voicebots.webhooks.tasks import sweep

    lease_env = {"WEBHOOK_TIMEOUT_SECONDS": 5, "WEBHOOK_LEASE_SECONDS": 1}  # a lease of 6 s (timeout + 1)
    first = workers(**lease_env)
    receiver.reply("/hook", Reply.json({"ok": True}, delay_s=20))  # still answering when the worker dies
    endpoint, secret = webhooks.create_endpoint(api.account, url=receiver.url_for("/hook"), events=["call.ended"])
    event = webhooks.emit(api.account.id, "call.ended", lambda: {"id": "call-1"})

    def sent_once():
        """the first worker's request"""
        return len(receiver.requests) == 1
    wait_for(sent_once)
    first.kill()  # SIGKILL: no clean-up, no record of the attempt
    first.wait(10)
    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == "pending" and delivery.attempts == 0 and delivery.leased_until is not None

    receiver.reply("/hook", Reply.json({"ok": True}))
    workers(**lease_env)

    def delivered():
        """the delivery picked up again by the sweep and delivered"""
        sweep.delay()  # what beat does every few seconds
        return WebhookDelivery.objects.filter(pk=delivery.pk, status="delivered").exists()
    wait_for(delivered, interval=1.0)
    first_try, second_try = receiver.requests
    assert first_try.headers["webhook-id"] == second_try.headers["webhook-id"] == event.message_id
    standardwebhooks.Webhook(secret).verify(second_try.body, second_try.headers)
    assert second_try.received_at - first_try.received_at >= 5  # not before the lease ran out
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 1
    assert json.loads(second_try.body)["data"] == {"id": "call-1"}


def test_each_kind_of_endpoint_ends_in_the_right_state_through_a_real_worker(api, receiver, workers, settings):
    """One event to five endpoints of one receiver: fine, slow but in time, failing, too slow, redirecting."""
    from voicebots.webhooks.tasks import sweep

    # Two tries, a second apart: here, where the deliveries are recorded, and in the worker that sends them.
    settings.WEBHOOK_RETRY_DELAYS = [1]
    workers(WEBHOOK_TIMEOUT_SECONDS=2, WEBHOOK_RETRY_DELAYS=1)
    receiver.reply("/slow", Reply.json({"ok": True}, delay_s=1))
    receiver.reply("/failing", Reply.error(500))
    receiver.reply("/too-slow", Reply.json({"late": True}, delay_s=6))
    receiver.reply("/moved", Reply.redirect(receiver.url_for("/ok")))
    endpoints = {path: webhooks.create_endpoint(api.account, url=receiver.url_for(path), events=["call.ended"])[0]
                 for path in ("/ok", "/slow", "/failing", "/too-slow", "/moved")}
    event = webhooks.emit(api.account.id, "call.ended", lambda: {"id": "call-1"})

    def settled():
        """every delivery delivered or failed"""
        sweep.delay()  # what beat does every few seconds: picks up the retries
        return not WebhookDelivery.objects.filter(event=event, status="pending").exists()
    wait_for(settled, interval=0.5)
    state = {path: WebhookDelivery.objects.get(event=event, endpoint=endpoint)
             for path, endpoint in endpoints.items()}
    assert {path: (d.status, d.attempts) for path, d in state.items()} == {
        "/ok": ("delivered", 1), "/slow": ("delivered", 1), "/failing": ("failed", 2),
        "/too-slow": ("failed", 2), "/moved": ("failed", 2)}
    assert state["/failing"].last_status_code == 500 and state["/failing"].last_error == "Answered HTTP 500."
    assert state["/too-slow"].last_error == "No answer within 2 s." and state["/too-slow"].last_status_code is None
    assert state["/moved"].last_status_code == 307 and "not followed" in state["/moved"].last_error
    # Not held up by the others: delivered while the too slow endpoint's first try was still waiting.
    too_slow_first = WebhookAttempt.objects.get(delivery=state["/too-slow"], number=1)
    assert state["/ok"].delivered_at < too_slow_first.started_at + timedelta(milliseconds=too_slow_first.duration_ms)
    assert [r.path for r in receiver.requests].count("/ok") == 1  # the redirect was not followed
