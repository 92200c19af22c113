"""The delivery log in a real browser (Playwright driving Debian's Chromium): a failed delivery's page, its
attempts, and the Retry now button sending it again; no JavaScript console errors."""
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests import browser as browsers
from tests.fakes.http_handler import FunctionHandlerFake, Reply
from voicebots.accounts.services import create_account, create_member
from voicebots.webhooks import services
from voicebots.webhooks.models import WebhookDelivery

PASSWORD = "a-long-password-123"


@pytest.fixture
def receiver(settings):
    endpoint = FunctionHandlerFake().start_in_thread()
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = True
    yield endpoint
    endpoint.stop()


def test_retry_now_in_the_admin_sends_a_failed_delivery_again(live_server, browser_page, receiver):
    page, errors = browser_page
    account, _ = create_account("Acme")
    create_member(account, "staffer", PASSWORD)
    services.create_endpoint(account, url=receiver.url_for("/hook"), events=["call.ended"])
    receiver.reply("/hook", Reply.error(500))
    event = services.emit(account.id, "call.ended", lambda: {"id": "call-1"})  # tried at once: tasks run eagerly
    delivery = WebhookDelivery.objects.get(event=event)
    receiver.reply("/hook", Reply.json({"ok": True}))
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=9, last_status_code=500,
                                                          last_error="Answered HTTP 500.", next_attempt_at=None)

    browsers.sign_in(page, f"{live_server.url}/admin/login/?next=/admin/webhooks/webhookdelivery/", "staffer",
                     PASSWORD)
    page.click(f"a[href$='/webhookdelivery/{delivery.pk}/change/']")
    try:
        page.wait_for_selector("button.retry-delivery")
    except PlaywrightTimeoutError:
        delivery.refresh_from_db()
        raise AssertionError(f"no Retry button at {page.url} (delivery {delivery.status}), errors {errors}, "
                             f"showing:\n{page.inner_text('body')[:2000]}") from None
    assert "Answered HTTP 500." in page.inner_text("#content")
    page.click("button.retry-delivery")
    page.wait_for_selector("ul.messagelist")
    assert "will be sent again now" in page.inner_text("ul.messagelist")
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.attempts == 10  # tasks run in-process in tests
    assert [r.headers["webhook-id"] for r in receiver.requests] == [event.message_id] * 2
    page.wait_for_selector("#content")
    assert page.locator("button.retry-delivery").count() == 0  # a delivered one offers no retry
    assert "delivered" in page.inner_text("#content")
    assert errors == []
