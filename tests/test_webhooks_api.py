"""The Webhook resource: endpoints, secrets, the delivery log and retries, scoped to the account."""
import pytest

from voicebots.webhooks import services
from voicebots.webhooks.models import WebhookDelivery, WebhookEndpoint


@pytest.fixture(autouse=True)
def _plain_http_allowed(settings):
    settings.WEBHOOK_ALLOW_HTTP = True


def create(api, **fields):
    payload = {"url": "https://hooks.example.com/voicebots", "events": ["call.ended"], **fields}
    return api.post("Webhook/", payload)


def test_an_endpoint_is_created_with_a_secret_shown_only_once(api):
    response = create(api, description="CRM", events=["call.ended", "call.analyzed"])
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert body["events"] == ["call.ended", "call.analyzed"] and body["enabled"] is True
    assert "api_id" in body
    shown = api.get(f"Webhook/{body['id']}").json()
    assert "secret" not in shown and shown["description"] == "CRM"
    listing = api.get("Webhook/").json()
    assert [w["id"] for w in listing["webhooks"]] == [body["id"]] and "secret" not in listing["webhooks"][0]
    assert listing["meta"]["total_count"] == 1
    # Stored encrypted: the column does not hold the secret in clear.
    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM webhooks_webhookendpoint WHERE id = %s", [body["id"]])
        assert body["secret"] not in cursor.fetchone()[0]


@pytest.mark.parametrize("_case, events, expected", [
    ("unknown event", ["call.ended", "call.endd"], "'call.endd' is not an event"),
    ("two unknown", ["calls", "x"], "'calls', 'x' are not events"),
    ("none", [], "Name at least one event"),
    ("not a list", "call.ended", "Expected a list"),
])
def test_event_names_are_checked_and_the_error_names_the_wrong_one(api, _case, events, expected):
    response = create(api, events=events)
    assert response.status_code == 400
    body = response.json()
    assert expected in body["details"]["events"][0], body
    assert expected in body["error"] or "events" in body["error"]


@pytest.mark.parametrize("_case, url, expected", [
    ("not a url", "hooks", "http(s) URL"),
    ("ftp", "ftp://example.com/x", "http(s) URL"),
    ("private address", "https://10.1.2.3/hook", "private"),
    ("loopback", "https://127.0.0.1:9000/hook", "private"),
    ("localhost", "https://localhost/hook", "localhost"),
    ("link-local metadata", "http://169.254.169.254/latest", "private"),
])
def test_webhook_urls_are_refused_when_they_cannot_be_safe(api, _case, url, expected):
    response = create(api, url=url)
    assert response.status_code == 400
    assert expected in response.json()["details"]["url"][0]


def test_plain_http_is_refused_unless_allowed(api, settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    response = create(api, url="http://hooks.example.com/x")
    assert response.status_code == 400 and "https" in response.json()["details"]["url"][0]


def test_unknown_fields_are_a_400(api):
    response = create(api, secret="mine")
    assert response.status_code == 400 and "secret" in response.json()["details"]


def test_patch_changes_a_subset_and_delete_removes(api):
    endpoint_id = create(api).json()["id"]
    response = api.patch(f"Webhook/{endpoint_id}", {"enabled": False, "events": ["call.started"]})
    assert response.status_code == 204
    shown = api.get(f"Webhook/{endpoint_id}/").json()
    assert shown["enabled"] is False and shown["events"] == ["call.started"]
    assert shown["url"] == "https://hooks.example.com/voicebots"
    assert api.patch(f"Webhook/{endpoint_id}", {"events": ["nope"]}).status_code == 400
    assert api.delete(f"Webhook/{endpoint_id}").status_code == 204
    assert api.get(f"Webhook/{endpoint_id}").status_code == 404


def test_rotating_gives_a_new_secret_and_the_old_one_signs_during_the_grace_period(api):
    created = create(api).json()
    rotated = api.post(f"Webhook/{created['id']}/rotate_secret")
    assert rotated.status_code == 200
    new_secret = rotated.json()["secret"]
    assert new_secret.startswith("whsec_") and new_secret != created["secret"]
    endpoint = WebhookEndpoint.objects.get(pk=created["id"])
    assert endpoint.secret == new_secret and endpoint.previous_secret == created["secret"]
    from django.utils import timezone
    from voicebots.webhooks.delivery import signing_secrets
    assert signing_secrets(endpoint, timezone.now()) == [new_secret, created["secret"]]
    later = endpoint.previous_secret_expires_at + timezone.timedelta(seconds=1)
    assert signing_secrets(endpoint, later) == [new_secret]


def deliveries_of(api, endpoint_id, **params):
    return api.get(f"Webhook/{endpoint_id}/deliveries", params)


def test_the_delivery_log_lists_and_filters_by_status(api):
    endpoint_id = create(api).json()["id"]
    first = services.emit(api.account.id, "call.ended", lambda: {"n": 1})
    services.emit(api.account.id, "call.ended", lambda: {"n": 2})
    assert services.emit(api.account.id, "call.started", lambda: {"n": 3}) is None  # not subscribed
    WebhookDelivery.objects.filter(event=first).update(status="failed", attempts=9, last_status_code=500,
                                                       last_error="Answered HTTP 500.")
    listing = deliveries_of(api, endpoint_id).json()
    assert listing["meta"]["total_count"] == 2
    delivery = listing["deliveries"][0]
    assert set(delivery) >= {"id", "event", "status", "attempts", "last_status_code", "last_error",
                             "next_attempt_at", "created_at", "webhook_id"}
    assert delivery["event"] == "call.ended"
    failed = deliveries_of(api, endpoint_id, status="failed").json()["deliveries"]
    assert [d["webhook_id"] for d in failed] == [first.message_id] and failed[0]["last_status_code"] == 500
    assert len(deliveries_of(api, endpoint_id, status="pending").json()["deliveries"]) == 1
    bad = deliveries_of(api, endpoint_id, status="lost")
    assert bad.status_code == 400 and "'lost' is not a delivery status" in bad.json()["details"]["status"][0]


def test_retry_of_a_failed_delivery_makes_it_pending_for_one_more_try(api):
    endpoint_id = create(api).json()["id"]
    event = services.emit(api.account.id, "call.ended", lambda: {})
    delivery = WebhookDelivery.objects.get(event=event)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=9, next_attempt_at=None)
    response = api.post(f"Webhook/{endpoint_id}/deliveries/{delivery.id}/retry")
    assert response.status_code == 202
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.max_attempts == 10 and delivery.next_attempt_at is not None
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="delivered")
    again = api.post(f"Webhook/{endpoint_id}/deliveries/{delivery.id}/retry")
    assert again.status_code == 409 and "already delivered" in again.json()["error"]
    assert api.post(f"Webhook/{endpoint_id}/deliveries/not-an-id/retry").status_code == 404


def test_another_accounts_webhooks_and_deliveries_are_404(api, other_api):
    theirs = create(other_api).json()["id"]
    event = services.emit(other_api.account.id, "call.ended", lambda: {})
    their_delivery = WebhookDelivery.objects.get(event=event)
    mine = create(api).json()["id"]
    assert api.get(f"Webhook/{theirs}").status_code == 404
    assert api.patch(f"Webhook/{theirs}", {"enabled": False}).status_code == 404
    assert api.delete(f"Webhook/{theirs}").status_code == 404
    assert api.post(f"Webhook/{theirs}/rotate_secret").status_code == 404
    assert api.get(f"Webhook/{theirs}/deliveries").status_code == 404
    assert api.post(f"Webhook/{theirs}/deliveries/{their_delivery.id}/retry").status_code == 404
    # Their delivery through my endpoint's path is not found either.
    assert api.post(f"Webhook/{mine}/deliveries/{their_delivery.id}/retry").status_code == 404
    assert [w["id"] for w in api.get("Webhook/").json()["webhooks"]] == [mine]
    # Other account's credentials on my path: never data.
    assert other_api.client.get(f"{api.prefix}Webhook/", **other_api.headers).status_code in (401, 403)
