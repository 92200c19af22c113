"""The admin validates through the API's serializers and never relates objects of different accounts."""
import pytest

from voicebots.accounts.services import create_member
from voicebots.bots.models import Voicebot
from voicebots.campaigns.models import Campaign
from voicebots.functions.models import Function

PASSWORD = "a-long-password-123"


@pytest.fixture
def root(client, api):
    create_member(api.account, "root", PASSWORD, superuser=True)
    client.login(username="root", password=PASSWORD)
    return client


@pytest.fixture
def staffer(client, api):
    create_member(api.account, "staffer", PASSWORD)
    client.login(username="staffer", password=PASSWORD)
    return client


def bot_form(**changes) -> dict:
    form = {"name": "Admin-made", "prompt": "", "welcome_message": "", "llm_provider": "anthropic",
            "llm_model": "claude-haiku-5-5", "tts_provider": "deepgram", "tts_voice": "luna",
            "stt_provider": "deepgram", "stt_language": "en", "call_timeout": 30, "max_call_duration": 1800,
            "interruption_min_words": 1, "backchannel_words": '["ok"]', "interruptions_enabled": "on",
            "record_calls": "on", "analysis": "{}"}
    for name in ("interruption_min_speech_ms", "interruption_words_wait_ms", "dead_air_ms"):
        form[name] = Voicebot._meta.get_field(name).default  # as the add page fills them in
    form.update(changes)
    return form


def errors_of(response) -> str:
    assert response.status_code == 200, "the form was accepted"
    form = response.context["adminform"].form
    return str(form.errors)


def test_a_superuser_cannot_give_a_bot_another_accounts_function_or_document(root, api, other_api):
    function = other_api.post("Function/", {"name": "theirs", "handler_url": "https://example.com/x"}).json()
    document = other_api.upload("Knowledgebase/", "theirs.txt", b"Their knowledge").json()
    response = root.post("/admin/bots/voicebot/add/", bot_form(
        account=api.account.pk, functions=[function["id"]], knowledgebases=[document["id"]]))
    errors = errors_of(response)
    assert function["id"] in errors and document["id"] in errors and "in this account" in errors
    assert not Voicebot.objects.filter(name="Admin-made").exists()


def test_a_superuser_cannot_move_a_bot_away_from_its_functions(root, api, other_api):
    function = api.post("Function/", {"name": "mine", "handler_url": "https://example.com/x"}).json()
    bot = api.post("Voicebot/", {"name": "Moving", "function_ids": [function["id"]]}).json()
    response = root.post(f"/admin/bots/voicebot/{bot['id']}/change/", bot_form(
        name="Moving", account=other_api.account.pk, functions=[function["id"]]))
    assert function["id"] in errors_of(response)
    assert Voicebot.objects.get(pk=bot["id"]).account == api.account


@pytest.mark.parametrize("field, value, api_group, api_value", [
    ("llm_model", "gpt-4o", "answer_llm", {"provider": "anthropic", "model": "gpt-4o"}),
    ("tts_voice", "not-a-voice", "tts", {"provider": "deepgram", "voice": "not-a-voice"}),
    ("stt_language", "xx", "stt", {"provider": "deepgram", "language": "xx"}),
])
def test_admin_refuses_what_the_api_refuses_with_the_same_message(staffer, api, field, value, api_group, api_value):
    response = staffer.post("/admin/bots/voicebot/add/", bot_form(**{field: value}))
    assert not Voicebot.objects.exists()
    from_api = api.post("Voicebot/", {"name": "Via API", api_group: api_value}).json()["details"]
    (api_message,) = next(iter(from_api.values()))
    form_errors = response.context["adminform"].form.errors
    assert form_errors[field] == [api_message]


def test_admin_accepts_and_canonicalises_what_the_api_accepts(staffer, api):
    response = staffer.post("/admin/bots/voicebot/add/", bot_form(llm_model="claude 3.5 Sonnet", tts_voice="LUNA"))
    assert response.status_code == 302, errors_of(response)
    bot = Voicebot.objects.get(name="Admin-made")
    assert (bot.llm_model, bot.tts_voice, bot.account) == ("claude-sonnet-5-5", "luna", api.account)


def test_the_bot_form_offers_choices_where_the_api_has_them(staffer):
    page = staffer.get("/admin/bots/voicebot/add/").content.decode()
    for select in ("llm_provider", "tts_provider", "stt_provider", "stt_language"):
        assert f'<select name="{select}"' in page, select
    assert '<option value="openai">' in page and '<option value="fr">' in page
    # Providers that take any id get suggestions, not a list.
    assert 'list="llm_model_choices"' in page and '<option value="claude-sonnet-5-5">' in page
    assert 'list="tts_voice_choices"' in page and '<option value="asteria">' in page


def test_superuser_lists_show_each_objects_account(root, api, other_api):
    from datetime import timedelta

    from django.utils import timezone

    from voicebots.calls.models import Call
    from voicebots.campaigns.models import Contact
    from voicebots.numbers.models import NumberAssignment

    bot = Voicebot.objects.get(pk=api.post("Voicebot/", {"name": "Ours"}).json()["id"])
    other_api.post("Voicebot/", {"name": "Theirs"})
    api.post("Function/", {"name": "f", "handler_url": "https://example.com/x"})
    api.upload("Knowledgebase/", "a.txt", b"Some knowledge")
    Call.objects.create(account=api.account, voicebot=bot)
    campaign = Campaign.objects.create(account=api.account, name="C", voicebot=bot, starts_at=timezone.now(),
                                       ends_at=timezone.now() + timedelta(days=1))
    Contact.objects.create(campaign=campaign, phone_number="+14155550100")
    NumberAssignment.objects.create(account=api.account, number="14155550100", voicebot=bot, app_id="1")
    listing = root.get("/admin/bots/voicebot/").content.decode()
    assert "column-owner_account" in listing
    assert api.account.name in listing and other_api.account.name in listing
    for model in ("functions/function", "knowledge/knowledgebase", "calls/call", "campaigns/campaign",
                  "campaigns/contact", "numbers/numberassignment"):
        assert "column-owner_account" in root.get(f"/admin/{model}/").content.decode(), model


def test_members_lists_do_not_show_an_account_column(staffer, api):
    api.post("Voicebot/", {"name": "Ours"})
    assert "column-owner_account" not in staffer.get("/admin/bots/voicebot/").content.decode()


def function_form(**changes) -> dict:
    form = {"name": "book", "description": "Books a table", "handler_url": "https://example.com/book",
            "timeout_seconds": 5,
            "user_parameters-0-name": "date", "user_parameters-0-type": "string",
            "user_parameters-0-description": "YYYY-MM-DD", "user_parameters-0-required": "on",
            "user_parameters-1-name": "guests", "user_parameters-1-type": "integer",
            "fixed_parameters-0-name": "clinic_id", "fixed_parameters-0-value": "c-42",
            "fixed_parameters-1-name": "floor", "fixed_parameters-1-value": "3",
            "fixed_parameters-2-name": "quoted", "fixed_parameters-2-value": '"3"'}
    form.update(changes)
    return form


def test_function_parameters_are_edited_as_rows_not_json(staffer, api):
    page = staffer.get("/admin/functions/function/add/").content.decode()
    assert 'name="user_parameters-0-name"' in page and '<select name="user_parameters-0-type"' in page
    assert 'name="fixed_parameters-0-value"' in page
    response = staffer.post("/admin/functions/function/add/", function_form())
    assert response.status_code == 302, errors_of(response)
    function = api.get("Function/").json()["functions"][0]
    assert function["userParameters"] == [
        {"name": "date", "type": "string", "description": "YYYY-MM-DD", "required": True},
        {"name": "guests", "type": "integer", "description": "", "required": False}]
    assert function["fixedParameters"] == [{"name": "clinic_id", "value": "c-42"}, {"name": "floor", "value": 3},
                                           {"name": "quoted", "value": "3"}]
    change_page = staffer.get(f"/admin/functions/function/{function['id']}/change/").content.decode()
    assert 'value="clinic_id"' in change_page and 'value="&quot;3&quot;"' in change_page


def test_function_rows_are_validated_by_the_api_rules(staffer):
    response = staffer.post("/admin/functions/function/add/", function_form(**{
        "name": "end_call", "user_parameters-1-name": "has space", "user_parameters-1-type": "string"}))
    errors = errors_of(response)
    assert "reserved" in errors and "letters, digits" in errors
    assert not Function.objects.exists()


def campaign_form(bot_id, **changes) -> dict:
    form = {"name": "Spring", "voicebot": bot_id, "caller_ids": "+14155550100",
            "starts_at_0": "2025-03-01", "starts_at_1": "00:00", "ends_at_0": "2025-12-31", "ends_at_1": "00:00",
            "timezone": "Europe/Paris", "calling_windows_mon": "09:00-12:00, 13:30-17:00",
            "calling_windows_sat": "10:00-13:00", "max_concurrent_calls": 2, "max_attempts": 3,
            "retry_delay_minutes": 60, "retry_on": "busy,no-answer", "ring_timeout": 30,
            "voicemail_action": "hang_up", "voicemail_message": ""}
    form.update(changes)
    return form


def test_calling_windows_have_a_field_per_weekday(staffer, api):
    bot = api.post("Voicebot/", {"name": "Dialer"}).json()
    page = staffer.get("/admin/campaigns/campaign/add/").content.decode()
    assert 'name="calling_windows_mon"' in page and 'name="calling_windows_sun"' in page
    response = staffer.post("/admin/campaigns/campaign/add/", campaign_form(bot["id"]))
    assert response.status_code == 302, errors_of(response)
    campaign = Campaign.objects.get()
    assert campaign.calling_windows == {"mon": [["09:00", "12:00"], ["13:30", "17:00"]], "sat": [["10:00", "13:00"]]}
    change_page = staffer.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert 'value="09:00-12:00, 13:30-17:00"' in change_page
    bad = staffer.post("/admin/campaigns/campaign/add/", campaign_form(bot["id"], calling_windows_tue="17:00-09:00"))
    assert "ends before it starts" in errors_of(bad)


def test_a_superuser_cannot_run_a_campaign_with_another_accounts_bot(root, api, other_api):
    theirs = other_api.post("Voicebot/", {"name": "Theirs"}).json()
    response = root.post("/admin/campaigns/campaign/add/", campaign_form(theirs["id"], account=api.account.pk))
    assert "in this account" in errors_of(response)
    assert not Campaign.objects.exists()


def test_a_superuser_cannot_point_a_number_at_another_accounts_bot(root, api, other_api):
    from voicebots.numbers.models import NumberAssignment

    theirs = other_api.post("Voicebot/", {"name": "Theirs"}).json()
    response = root.post("/admin/numbers/numberassignment/add/", {
        "account": api.account.pk, "number": "+14155550100", "voicebot": theirs["id"]})
    assert "in this account" in errors_of(response)
    assert not NumberAssignment.objects.exists()
