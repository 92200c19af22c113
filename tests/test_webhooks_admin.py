"""Webhooks in the admin: endpoints (secret shown once), the delivery log with attempts, the retry button,
and a call's analysis; members see only their account's."""
import pytest

from voicebots.accounts.services import create_member
from voicebots.calls.models import Call
from voicebots.webhooks import services
from voicebots.webhooks.models import WebhookDelivery, WebhookEndpoint

PASSWORD = "a-long-password-123"


@pytest.fixture
def member(client, api, settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    create_member(api.account, "staffer", PASSWORD)
    client.login(username="staffer", password=PASSWORD)
    return client


def failed_delivery(account, url="https://hooks.example.com/x"):
    endpoint, _ = services.create_endpoint(account, url=url, events=["call.ended"])
    event = services.emit(account.id, "call.ended", lambda: {"id": "c-1"})
    delivery = WebhookDelivery.objects.get(event=event)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=9, last_status_code=500,
                                                          last_error="Answered HTTP 500.", next_attempt_at=None)
    delivery.attempt_log.create(number=9, started_at=delivery.created_at, duration_ms=12.5, status_code=500,
                                error="Answered HTTP 500.", response_excerpt="oops")
    return delivery


def test_adding_an_endpoint_shows_its_secret_once(member, api):
    response = member.post("/admin/webhooks/webhookendpoint/add/", {
        "url": "https://hooks.example.com/new", "description": "", "events": ["call.ended", "call.analyzed"],
        "enabled": "on"}, follow=True)
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get(url="https://hooks.example.com/new")
    assert endpoint.account == api.account and endpoint.events == ["call.ended", "call.analyzed"]
    messages = [str(m) for m in response.context["messages"]]
    assert any(endpoint.secret in m for m in messages)
    page = member.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/")
    assert page.status_code == 200 and endpoint.secret.encode() not in page.content


def test_a_private_url_is_refused_in_the_admin_too(member):
    response = member.post("/admin/webhooks/webhookendpoint/add/", {
        "url": "http://10.0.0.5/hook", "events": ["call.ended"], "enabled": "on"})
    assert response.status_code == 200 and b"private" in response.content
    assert not WebhookEndpoint.objects.exists()


def test_the_delivery_page_shows_attempts_and_its_retry_button_sends_it_again(member, api):
    delivery = failed_delivery(api.account)
    listing = member.get("/admin/webhooks/webhookdelivery/")
    assert listing.status_code == 200 and b"call.ended" in listing.content
    page = member.get(f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/")
    assert page.status_code == 200
    assert b"Retry now" in page.content and b"Answered HTTP 500." in page.content and b"oops" in page.content
    response = member.post(f"/admin/webhooks/webhookdelivery/{delivery.pk}/retry/", follow=True)
    assert response.status_code == 200
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.max_attempts == 10
    assert any("sent again" in str(m) for m in response.context["messages"])


def test_members_see_and_retry_only_their_accounts_deliveries(member, api, other_api):
    mine = failed_delivery(api.account, "https://hooks.example.com/mine")
    theirs = failed_delivery(other_api.account, "https://hooks.example.com/theirs")
    listing = member.get("/admin/webhooks/webhookdelivery/")
    assert b"/mine" in listing.content and b"/theirs" not in listing.content
    assert member.get(f"/admin/webhooks/webhookdelivery/{theirs.pk}/change/").status_code in (302, 404)
    assert member.post(f"/admin/webhooks/webhookdelivery/{theirs.pk}/retry/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "failed"
    endpoints = member.get("/admin/webhooks/webhookendpoint/")
    assert b"/mine" in endpoints.content and b"/theirs" not in endpoints.content
    mine.refresh_from_db()
    assert mine.status == "failed"  # only looked at


def test_a_calls_analysis_shows_on_its_admin_page(member, api):
    call = Call.objects.create(account=api.account, status="completed", analysis={
        "status": "done", "summary": "Booked a cleaning.", "success": True, "success_reason": "Booked.",
        "data": {"date": "2026-05-04"}, "error": None, "completed_at": "2026-05-01T10:00:00+00:00"})
    page = member.get(f"/admin/calls/call/{call.pk}/change/")
    assert page.status_code == 200
    assert b"Booked a cleaning." in page.content and b"2026-05-04" in page.content

