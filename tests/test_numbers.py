"""The account's Plivo numbers, and assigning them to bots, through the real SDK against a fake Plivo API."""
import pytest

from voicebots.numbers.models import BotApplication, NumberAssignment

PUBLIC = "https://bots.example.com"
IVR_NUMBER, BARE_NUMBER = "+14155550100", "+14155550101"


@pytest.fixture(autouse=True)
def _fast_plivo_failures(fast_plivo_failures):
    pass


@pytest.fixture
def fake_plivo(fake_plivo, settings, api):
    fake = fake_plivo
    settings.PUBLIC_BASE_URL = PUBLIC
    fake.ivr_app = fake.add_application("Old IVR")
    fake.add_number(IVR_NUMBER, app_id=fake.ivr_app, alias="Front desk")
    fake.add_number(BARE_NUMBER)
    api.account.plivo_auth_id, api.account.plivo_auth_token = fake.auth_id, fake.auth_token
    api.account.save()
    return fake


@pytest.fixture
def bot(api, fake_plivo):
    return api.post("Voicebot/", {"name": "Front desk bot"}).json()


def assign(api, number, bot_id):
    return api.patch(f"Number/{number}/", {"voicebot_id": bot_id})


def test_the_accounts_plivo_numbers_are_listed(api, fake_plivo):
    response = api.get("Number/")
    assert response.status_code == 200
    body = response.json()
    assert body["meta"]["total_count"] == 2
    ivr = body["numbers"][0]
    assert ivr == {"number": IVR_NUMBER, "alias": "Front desk", "number_type": "local", "country": "United States",
                   "region": "California, UNITED STATES", "voice_enabled": True,
                   "application_id": fake_plivo.ivr_app, "voicebot_id": None}
    assert all(r.authorized for r in fake_plivo.requests_to("GET", "/Number/"))


def test_listing_pages_through_plivos_pages_of_twenty(api, fake_plivo):
    for n in range(30):
        fake_plivo.add_number(f"+1415555{n + 200:04d}")
    body = api.get("Number/", {"limit": 25, "offset": 5}).json()
    assert body["meta"]["total_count"] == 32 and len(body["numbers"]) == 25
    assert body["numbers"][0]["number"] == "+14155550203"  # after the two numbers of the fixture
    pages = [(r.query["offset"], r.query["limit"]) for r in fake_plivo.requests_to("GET", "/Number/")][1:]
    assert pages == [("5", "20"), ("25", "5")]
    assert api.get("Number/", {"limit": 500}).status_code == 400


def test_one_number_with_or_without_the_plus(api, fake_plivo):
    assert api.get(f"Number/{IVR_NUMBER}/").json()["alias"] == "Front desk"
    assert api.get("Number/14155550100").json()["number"] == IVR_NUMBER
    unknown = api.get("Number/+19995550000/")
    assert unknown.status_code == 404 and "not one of this account's Plivo numbers" in unknown.json()["error"]
    assert api.get("Number/not-a-number/").status_code == 404


def test_assigning_a_bot_creates_its_application_and_links_the_number(api, bot, fake_plivo):
    assert assign(api, IVR_NUMBER, bot["id"]).status_code == 204
    app_id = fake_plivo.number_app_id(IVR_NUMBER)
    app = fake_plivo.applications[app_id]
    assert app["answer_url"] == bot["inbound_call_url"]
    assert app["hangup_url"] == f"{PUBLIC}/v1/Account/{api.account.auth_id}/Voicebot/{bot['id']}/hangup"
    assert app["answer_method"] == app["hangup_method"] == "POST"
    shown = api.get(f"Number/{IVR_NUMBER}/").json()
    assert shown["voicebot_id"] == bot["id"] and shown["application_id"] == app_id


def test_a_bots_numbers_share_one_application_kept_up_to_date(api, bot, fake_plivo, settings):
    assign(api, IVR_NUMBER, bot["id"])
    settings.PUBLIC_BASE_URL = "https://new-host.example.com"
    assign(api, BARE_NUMBER, bot["id"])
    assert len(fake_plivo.requests_to("POST", "/Application/")) == 2  # one create, then one update
    app_id = fake_plivo.number_app_id(IVR_NUMBER)
    assert fake_plivo.number_app_id(BARE_NUMBER) == app_id
    assert fake_plivo.applications[app_id]["answer_url"].startswith("https://new-host.example.com/")


def test_unassigning_restores_the_previous_application(api, bot, fake_plivo):
    other = api.post("Voicebot/", {"name": "Second bot"}).json()
    assign(api, IVR_NUMBER, bot["id"])
    assign(api, IVR_NUMBER, other["id"])  # reassigned: still remembers what it had before any bot
    assert fake_plivo.number_app_id(IVR_NUMBER) == BotApplication.objects.get(voicebot_id=other["id"]).app_id
    assert assign(api, IVR_NUMBER, None).status_code == 204
    assert fake_plivo.number_app_id(IVR_NUMBER) == fake_plivo.ivr_app
    assert api.get(f"Number/{IVR_NUMBER}/").json()["voicebot_id"] is None
    assign(api, BARE_NUMBER, bot["id"])
    assign(api, BARE_NUMBER, None)
    assert fake_plivo.number_app_id(BARE_NUMBER) is None  # back to the account's default application
    assert not NumberAssignment.objects.exists()


def test_unassigning_a_number_no_bot_has_is_a_409(api, fake_plivo):
    response = assign(api, BARE_NUMBER, None)
    assert response.status_code == 409 and "not assigned" in response.json()["error"]


def test_an_application_deleted_in_plivo_is_made_again(api, bot, fake_plivo):
    assign(api, IVR_NUMBER, bot["id"])
    fake_plivo.applications.clear()
    assert assign(api, BARE_NUMBER, bot["id"]).status_code == 204
    assert fake_plivo.number_app_id(BARE_NUMBER) in fake_plivo.applications


def test_assigning_an_unknown_number_is_a_404_and_changes_nothing(api, bot, fake_plivo):
    response = assign(api, "+19995550000", bot["id"])
    assert response.status_code == 404 and "+19995550000" in response.json()["error"]
    assert not fake_plivo.applications.keys() - {fake_plivo.ivr_app}
    assert not NumberAssignment.objects.exists()


@pytest.mark.parametrize("body, field", [({"voicebot_id": "00000000-0000-4000-8000-000000000000"}, "voicebot_id"),
                                         ({}, "voicebot_id"), ({"voicebot_id": "x"}, "voicebot_id"),
                                         ({"voicebot_id": None, "app_id": "1"}, "app_id")])
def test_bad_parameters_are_400s(api, fake_plivo, body, field):
    response = api.patch(f"Number/{IVR_NUMBER}/", body)
    assert response.status_code == 400 and field in response.json()["details"]


def test_another_accounts_bot_cannot_be_assigned(api, other_api, fake_plivo):
    theirs = other_api.post("Voicebot/", {"name": "Theirs"}).json()
    assert assign(api, IVR_NUMBER, theirs["id"]).status_code == 400


def test_bad_plivo_credentials_are_a_clear_409(api, bot, fake_plivo):
    api.account.plivo_auth_token = "wrong"
    api.account.save()
    for response in (api.get("Number/"), api.get(f"Number/{IVR_NUMBER}"), assign(api, IVR_NUMBER, bot["id"])):
        assert response.status_code == 409 and "Plivo credentials" in response.json()["error"]


def test_an_account_without_plivo_credentials_is_told_what_to_set(other_api, fake_plivo):
    response = other_api.get("Number/")
    assert response.status_code == 409 and "Plivo auth id and auth token" in response.json()["error"]


def test_plivo_5xx_is_retried(api, bot, fake_plivo):
    fake_plivo.fail_next(502, times=2, path="/Number/")
    assert api.get("Number/").status_code == 200


def test_plivo_5xx_or_timeouts_after_retries_are_502s(api, bot, fake_plivo):
    fake_plivo.fail_next(503, times=10, path="/Number/")
    response = api.get("Number/")
    assert response.status_code == 502 and "Plivo is unavailable" in response.json()["error"]
    fake_plivo.clear_failures()
    fake_plivo.stall_next(1.0, times=10, path="/Application/")
    response = assign(api, IVR_NUMBER, bot["id"])
    assert response.status_code == 502 and "did not answer" in response.json()["error"]
    assert fake_plivo.number_app_id(IVR_NUMBER) == fake_plivo.ivr_app  # untouched


def test_admin_assigns_and_unassigns_numbers(api, bot, fake_plivo, client):
    from voicebots.accounts.services import create_member

    create_member(api.account, "staffer", "a-long-password-123")
    client.login(username="staffer", password="a-long-password-123")
    add_page = client.get("/admin/numbers/numberassignment/add/")
    assert add_page.status_code == 200 and IVR_NUMBER.encode() in add_page.content
    response = client.post("/admin/numbers/numberassignment/add/", {"number": IVR_NUMBER, "voicebot": bot["id"]})
    assert response.status_code == 302, response.content[:2000]
    assignment = NumberAssignment.objects.get()
    assert assignment.account == api.account and fake_plivo.number_app_id(IVR_NUMBER) == assignment.app_id
    assert client.get("/admin/numbers/numberassignment/").status_code == 200
    assert client.get(f"/admin/numbers/numberassignment/{assignment.pk}/change/").status_code == 200
    response = client.post(f"/admin/numbers/numberassignment/{assignment.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert fake_plivo.number_app_id(IVR_NUMBER) == fake_plivo.ivr_app and not NumberAssignment.objects.exists()
