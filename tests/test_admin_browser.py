"""The admin's forms in a real browser (Chromium through Playwright): widgets work and the console stays clean."""
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests import browser as browsers
from voicebots.accounts.services import create_member
from voicebots.campaigns.models import Campaign
from voicebots.functions.models import Function

PASSWORD = "a-long-password-123"


@pytest.fixture
def page(browser):
    page, errors = browsers.open_page(browser)
    page.console_errors = errors
    return page


@pytest.fixture
def signed_in(page, live_server, api):
    create_member(api.account, "staffer", PASSWORD)
    browsers.sign_in(page, f"{live_server.url}/admin/login/", "staffer", PASSWORD)
    page.wait_for_url(f"{live_server.url}/admin/")
    return page


def wait_until_saved(page, url: str) -> None:
    """Wait for the admin's redirect after a save; when it does not come, say what the page shows instead."""
    try:
        page.wait_for_url(url)
    except PlaywrightTimeoutError:
        errors = page.locator(".errorlist, .errornote").all_text_contents()
        raise AssertionError(f"not saved: still on {page.url}, showing errors {errors}") from None


def test_function_parameters_are_added_as_rows_in_the_browser(signed_in, live_server, api):
    page = signed_in
    page.goto(f"{live_server.url}/admin/functions/function/add/")
    page.fill("#id_name", "book_table")
    page.fill("#id_handler_url", "https://example.com/book")
    page.fill("[name=user_parameters-0-name]", "date")
    page.select_option("[name=user_parameters-0-type]", "string")
    page.check("[name=user_parameters-0-required]")
    page.fill("[name=fixed_parameters-0-name]", "clinic_id")
    page.fill("[name=fixed_parameters-0-value]", "42")
    page.click("input[name=_save]")
    wait_until_saved(page, f"{live_server.url}/admin/functions/function/")
    function = Function.objects.get()
    assert function.user_parameters == [{"name": "date", "type": "string", "description": "", "required": True}]
    assert function.fixed_parameters == [{"name": "clinic_id", "value": 42}]
    assert page.console_errors == []


def test_bot_settings_offer_the_apis_choices_in_the_browser(signed_in, live_server):
    page = signed_in
    page.goto(f"{live_server.url}/admin/bots/voicebot/add/")
    page.fill("#id_name", "Front desk")
    page.fill("#id_llm_model", "claude-sonnet-5-5")
    page.select_option("#id_tts_provider", "deepgram")
    page.fill("#id_tts_voice", "not-a-voice")
    page.select_option("#id_stt_language", "fr")
    page.click("input[name=_save]")
    assert "Unknown Deepgram Aura voice" in page.text_content(".errorlist")
    page.fill("#id_tts_voice", "asteria")
    page.click("input[name=_save]")
    wait_until_saved(page, f"{live_server.url}/admin/bots/voicebot/")
    assert "Front desk" in page.content()
    assert page.console_errors == []


def test_calling_windows_are_typed_per_weekday_in_the_browser(signed_in, live_server, api):
    page = signed_in
    bot = api.post("Voicebot/", {"name": "Dialer"}).json()
    page.goto(f"{live_server.url}/admin/campaigns/campaign/add/")
    page.fill("#id_name", "Spring")
    page.select_option("#id_voicebot", bot["id"])
    page.fill("#id_caller_ids", "+14155550100")
    page.fill("#id_starts_at_0", "2025-03-01")
    page.fill("#id_starts_at_1", "09:00:00")
    page.fill("#id_ends_at_0", "2025-12-31")
    page.fill("#id_ends_at_1", "18:00:00")
    page.fill("[name=calling_windows_mon]", "09:00-12:00, 14:00-17:00")
    page.fill("[name=calling_windows_fri]", "10:00-16:00")
    page.click("input[name=_save]")
    wait_until_saved(page, f"{live_server.url}/admin/campaigns/campaign/")
    assert Campaign.objects.get().calling_windows == {"mon": [["09:00", "12:00"], ["14:00", "17:00"]],
                                                      "fri": [["10:00", "16:00"]]}
    assert page.console_errors == []


def test_the_api_docs_page_shows_every_resource(page, live_server):
    page.goto(f"{live_server.url}/api/docs")
    page.wait_for_selector(".opblock-tag-section", timeout=20_000)
    tags = page.locator(".opblock-tag").all_text_contents()
    for resource in ("Voicebot", "Function", "Knowledgebase", "Call", "Campaign", "Number", "Webhook", "Account"):
        assert any(tag.strip().startswith(resource) for tag in tags), (resource, tags)
    assert "Rate limits" in page.text_content(".information-container")
    assert page.console_errors == []
