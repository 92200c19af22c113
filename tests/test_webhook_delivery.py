"""Sending deliveries to a real local HTTP endpoint: success, failures, timeouts, redirects, slow and
dead endpoints, retries with the same webhook-id, leases of senders that died. Signatures are checked with
the `standardwebhooks` package, as a receiver would."""
import socket
import threading
import time
from datetime import timedelta

import pytest
import standardwebhooks
from django.utils import timezone

from tests.fakes.http_handler import FunctionHandlerFake, Reply
from voicebots.webhooks import delivery, services
from voicebots.webhooks.models import WebhookAttempt, WebhookDelivery


@pytest.fixture
def receiver(settings):
    endpoint = FunctionHandlerFake().start_in_thread()
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True  # it listens on loopback
    yield endpoint
    endpoint.stop()


def subscribe(account, url, events=("call.ended",)):
    endpoint, secret = services.create_endpoint(account, url=url, events=list(events))
    return endpoint, secret


def the_delivery(event):
    return WebhookDelivery.objects.get(event=event)


def make_due(delivery_row):
    WebhookDelivery.objects.filter(pk=delivery_row.pk).update(next_attempt_at=timezone.now())


def test_a_delivery_is_signed_per_standard_webhooks_and_marked_delivered(api, receiver):
    endpoint, secret = subscribe(api.account, receiver.url_for("/hook"))
    event = services.emit(api.account.id, "call.ended", lambda: {"id": "c-1", "note": "naïve ☎"})
    attempts, more = delivery.run()
    assert (attempts, more) == (1, False)
    request = receiver.requests[0]
    payload = standardwebhooks.Webhook(secret).verify(request.body, request.headers)
    assert payload["type"] == "call.ended" and payload["data"] == {"id": "c-1", "note": "naïve ☎"}
    assert payload["timestamp"].endswith("Z")
    assert request.headers["webhook-id"] == event.message_id
    assert request.headers["content-type"] == "application/json"
    row = the_delivery(event)
    assert row.status == "delivered" and row.attempts == 1 and row.last_status_code == 200
    assert row.delivered_at is not None and row.leased_until is None
    assert WebhookAttempt.objects.get(delivery=row).status_code == 200
    # Delivered is final: nothing is sent again.
    assert delivery.run() == (0, False)
    assert len(receiver.requests) == 1


def test_a_wrong_secret_does_not_verify(api, receiver):
    subscribe(api.account, receiver.url_for("/hook"))
    services.emit(api.account.id, "call.ended", lambda: {})
    delivery.run()
    request = receiver.requests[0]
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(services.signing.new_secret()).verify(request.body, request.headers)


def test_after_rotation_both_the_old_and_the_new_secret_verify(api, receiver):
    endpoint, old_secret = subscribe(api.account, receiver.url_for("/hook"))
    new_secret = services.rotate_secret(endpoint)
    services.emit(api.account.id, "call.ended", lambda: {})
    delivery.run()
    request = receiver.requests[0]
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old_secret, new_secret):
        standardwebhooks.Webhook(secret).verify(request.body, request.headers)


def test_a_failing_endpoint_is_retried_with_the_same_webhook_id_then_delivered(api, receiver, settings):
    settings.WEBHOOK_RETRY_DELAYS = [5, 30]
    subscribe(api.account, receiver.url_for("/hook"))
    receiver.reply("/hook", Reply.error(503, "down for maintenance"))
    event = services.emit(api.account.id, "call.ended", lambda: {})
    before = timezone.now()
    assert delivery.run() == (1, False)
    row = the_delivery(event)
    assert row.status == "pending" and row.attempts == 1 and row.last_status_code == 503
    assert row.last_error == "Answered HTTP 503."
    assert timedelta(seconds=4) < row.next_attempt_at - before < timedelta(seconds=7)
    assert delivery.run() == (0, False)  # not due yet
    receiver.reply("/hook", Reply.json({"ok": True}))
    make_due(row)
    assert delivery.run() == (1, False)
    row.refresh_from_db()
    assert row.status == "delivered" and row.attempts == 2
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == event.message_id
    assert first.body == second.body
    attempts = list(WebhookAttempt.objects.filter(delivery=row).values_list("number", "status_code"))
    assert attempts == [(1, 503), (2, 200)]
    assert "down for maintenance" in WebhookAttempt.objects.get(delivery=row, number=1).response_excerpt


def test_a_delivery_is_failed_after_its_last_try(api, receiver, settings):
    settings.WEBHOOK_RETRY_DELAYS = [0, 0]  # due again at once: three tries in one run
    subscribe(api.account, receiver.url_for("/hook"))
    receiver.reply("/hook", Reply.error(500))
    event = services.emit(api.account.id, "call.ended", lambda: {})
    assert delivery.run() == (3, False)
    row = the_delivery(event)
    assert row.status == "failed" and row.attempts == 3 and row.next_attempt_at is None
    assert len(receiver.requests) == 3


def test_a_timeout_is_a_failed_attempt_that_says_so(api, receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    subscribe(api.account, receiver.url_for("/slow"))
    receiver.reply("/slow", Reply.sleep(3))
    event = services.emit(api.account.id, "call.ended", lambda: {})
    started = time.monotonic()
    delivery.run()
    assert time.monotonic() - started < 2.5
    row = the_delivery(event)
    assert row.status == "pending" and row.last_status_code is None
    assert row.last_error == "No answer within 0.5 s."


def test_a_redirect_is_not_followed_and_the_attempt_says_why(api, receiver):
    subscribe(api.account, receiver.url_for("/old"))
    receiver.reply("/old", Reply.redirect(receiver.url_for("/new"), status=308))
    event = services.emit(api.account.id, "call.ended", lambda: {})
    delivery.run()
    row = the_delivery(event)
    assert row.status == "pending" and row.last_status_code == 308
    assert "redirect" in row.last_error and "not followed" in row.last_error and "/new" in row.last_error
    assert [r.path for r in receiver.requests] == ["/old"]


def test_an_unreachable_endpoint_is_a_failed_attempt(api, settings):
    settings.WEBHOOK_ALLOW_HTTP = settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subscribe(api.account, f"http://127.0.0.1:{port}/hook")
    event = services.emit(api.account.id, "call.ended", lambda: {})
    delivery.run()
    row = the_delivery(event)
    assert row.status == "pending" and row.last_error.startswith("Could not connect")


def test_private_addresses_are_refused_when_sending_too(api, receiver, settings):
    # Created while allowed (or through a host name that later resolves privately): refused at send time.
    subscribe(api.account, receiver.url_for("/hook"))
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    event = services.emit(api.account.id, "call.ended", lambda: {})
    delivery.run()
    row = the_delivery(event)
    assert "private" in row.last_error and receiver.requests == []


def test_a_host_name_resolving_to_loopback_is_refused(api, receiver, settings):
    subscribe(api.account, f"http://localhost:{receiver.port}/hook")
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = False
    event = services.emit(api.account.id, "call.ended", lambda: {})
    delivery.run()
    assert "private" in the_delivery(event).last_error and receiver.requests == []


def test_a_slow_endpoint_does_not_hold_up_another_endpoints_deliveries(api, receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 5
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 2
    fast = FunctionHandlerFake().start_in_thread()
    try:
        subscribe(api.account, receiver.url_for("/slow"))
        subscribe(api.account, fast.url_for("/fast"))
        receiver.reply("/slow", Reply.json({"ok": True}, delay_s=1.5))
        started = time.monotonic()
        for n in range(6):  # the slow endpoint has 6 to take, two at a time: 4.5 s in all
            services.emit(api.account.id, "call.ended", lambda n=n: {"n": n})
        delivery.run()
        fast_arrivals = sorted(r.received_at - started for r in fast.requests)
        slow_arrivals = sorted(r.received_at - started for r in receiver.requests)
        assert len(fast_arrivals) == 6 and len(slow_arrivals) == 6
        assert fast_arrivals[-1] < 1.0, fast_arrivals  # all sent while the slow ones waited
        assert slow_arrivals[-1] > 2.5  # the slow endpoint got at most two at a time
        assert WebhookDelivery.objects.filter(status="delivered").count() == 12
    finally:
        fast.stop()


def test_a_delivery_whose_sender_died_is_sent_again_once_its_lease_runs_out(api, receiver):
    subscribe(api.account, receiver.url_for("/hook"))
    event = services.emit(api.account.id, "call.ended", lambda: {})
    [job] = delivery.claim(10)  # a sender took it... and died before writing anything down
    assert delivery.claim(10) == []  # held: nobody else takes it
    assert delivery.run() == (0, False)
    WebhookDelivery.objects.filter(pk=job.delivery_id).update(leased_until=timezone.now() - timedelta(seconds=1))
    assert delivery.run() == (1, False)
    row = the_delivery(event)
    assert row.status == "delivered" and receiver.requests[0].headers["webhook-id"] == event.message_id


def test_a_late_result_from_a_sender_that_lost_its_lease_does_not_undo_a_delivery(api, receiver):
    subscribe(api.account, receiver.url_for("/hook"))
    event = services.emit(api.account.id, "call.ended", lambda: {})
    [stale_job] = delivery.claim(10)
    WebhookDelivery.objects.filter(pk=stale_job.delivery_id).update(leased_until=timezone.now() - timedelta(seconds=1))
    delivery.run()  # another sender delivered it
    from voicebots.webhooks.sender import Outcome
    delivery.record(stale_job, Outcome(False, None, "No answer within 10 s.", 10_000.0), timezone.now())
    row = the_delivery(event)
    assert row.status == "delivered" and row.last_status_code == 200 and row.attempts == 2


def test_disabled_endpoints_get_no_new_deliveries_and_their_pending_ones_wait(api, receiver):
    endpoint, _ = subscribe(api.account, receiver.url_for("/hook"))
    event = services.emit(api.account.id, "call.ended", lambda: {})
    endpoint.enabled = False
    endpoint.save()
    assert services.emit(api.account.id, "call.ended", lambda: {}) is None
    assert delivery.run() == (0, False) and receiver.requests == []
    endpoint.enabled = True
    endpoint.save()
    delivery.run()
    assert the_delivery(event).status == "delivered"


def test_only_one_sender_runs_at_a_time(api, receiver):
    subscribe(api.account, receiver.url_for("/hook"))
    services.emit(api.account.id, "call.ended", lambda: {})
    results = {}

    def other_sender():
        from django.db import connection
        results["other"] = delivery.run()
        connection.close()

    key = delivery._try_lock()
    assert key is not None
    try:
        thread = threading.Thread(target=other_sender)
        thread.start()
        thread.join(10)
    finally:
        delivery._unlock(key)
    assert results["other"] == (0, False) and receiver.requests == []


def test_the_log_keeps_its_retention_days_and_never_drops_a_pending_delivery(api, settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_LOG_RETENTION_DAYS = 30
    subscribe(api.account, "https://hooks.example.com/x")
    old_done = services.emit(api.account.id, "call.ended", lambda: {})
    old_pending = services.emit(api.account.id, "call.ended", lambda: {})
    recent = services.emit(api.account.id, "call.ended", lambda: {})
    WebhookDelivery.objects.filter(event=old_done).update(status="delivered")
    WebhookDelivery.objects.filter(event=recent).update(status="failed")
    from voicebots.webhooks.models import WebhookEvent
    WebhookEvent.objects.filter(pk__in=[old_done.pk, old_pending.pk]).update(
        created_at=timezone.now() - timedelta(days=31))
    assert services.prune() == 1
    assert set(WebhookEvent.objects.values_list("pk", flat=True)) == {old_pending.pk, recent.pk}
    settings.WEBHOOK_LOG_RETENTION_DAYS = 0
    WebhookDelivery.objects.update(status="delivered")
    assert services.prune() == 0  # 0 keeps everything


def test_a_broker_that_is_down_loses_nothing_and_breaks_no_call(api, receiver, monkeypatch,
                                                                 django_capture_on_commit_callbacks):
    from voicebots.analysis import tasks as analysis_tasks
    from voicebots.bots.models import Voicebot
    from voicebots.calls import services as calls
    from voicebots.calls.models import Call
    from voicebots.webhooks import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to the broker. Connection refused.")

    monkeypatch.setattr(tasks.deliver, "apply_async", broker_down)
    monkeypatch.setattr(analysis_tasks.analyze_call, "apply_async", broker_down)
    subscribe(api.account, receiver.url_for("/hook"))
    bot = Voicebot.objects.create(account=api.account, name="Desk")
    call = Call.objects.create(account=api.account, voicebot=bot, status="in-progress")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        ended = calls.finalize(call, reason="The caller hung up.")
    assert len(callbacks) == 2  # both ran, both failed, neither raised
    assert ended.status == "completed" and ended.analysis["status"] == "pending"
    assert receiver.requests == []
    assert delivery.run() == (1, False)  # what the sweep starts once the broker is back
    assert receiver.requests[0].headers["webhook-id"].startswith("msg_")


def test_more_senders_may_run_when_configured(api, settings):
    """Each sender holds a slot on its own database connection (here: one per thread)."""
    settings.WEBHOOK_SENDERS = 2
    held, release = [], threading.Event()

    def sender():
        from django.db import connection
        key = delivery._try_lock()
        held.append(key)
        if key is not None:
            release.wait(10)
            delivery._unlock(key)
        connection.close()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(held) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    third = threading.Thread(target=sender)
    third.start()
    third.join(10)
    release.set()
    for thread in threads:
        thread.join(10)
    assert len(set(held[:2])) == 2 and None not in held[:2]  # two slots
    assert held[2] is None  # both taken: a third sender does not run
