"""Where the platform's events come from: a call's stream starting and ending, and a campaign's contacts
and completion. Each writes a delivery (in the same transaction) for the endpoints that want it."""
import json

import pytest

from tests import test_campaigns
from tests.test_campaigns import contact, hang_up, run_dispatch
from voicebots.bots.models import Voicebot
from voicebots.calls.models import Call
from voicebots.telephony.access import StreamAccess, claim_stream
from voicebots.webhooks import services
from voicebots.webhooks.models import WebhookDelivery, WebhookEvent


# The campaign tests' fixtures: a controlled clock, a bot on the fake Plivo, a scheduled campaign.
now, bot, running = test_campaigns.now, test_campaigns.bot, test_campaigns.running
fake_plivo, _fast_plivo_failures = test_campaigns.fake_plivo, test_campaigns._fast_plivo_failures


@pytest.fixture(autouse=True)
def _https_only_is_fine(settings):
    settings.WEBHOOK_ALLOW_HTTP = True


def subscribe(account, *events):
    return services.create_endpoint(account, url="https://hooks.example.com/x", events=list(events))[0]


def bodies(event_type):
    return [json.loads(e.body) for e in WebhookEvent.objects.filter(type=event_type).order_by("created_at")]


def test_call_started_fires_when_the_stream_starts(api):
    endpoint = subscribe(api.account, "call.started")
    bot_row = Voicebot.objects.create(account=api.account, name="Desk")
    call = Call.objects.create(account=api.account, voicebot=bot_row, status="ringing", from_number="+14155550123")
    claim_stream(StreamAccess(bot_row, call), "plivo-call-uuid", "stream-1")
    [started] = bodies("call.started")
    assert started["type"] == "call.started" and started["data"]["id"] == str(call.id)
    assert started["data"]["status"] == "in-progress" and started["data"]["from"] == "+14155550123"
    assert "turns" not in started["data"]
    assert WebhookDelivery.objects.get().endpoint == endpoint


def test_accounts_without_endpoints_record_nothing(api, other_api):
    subscribe(other_api.account, "call.started")  # another account's endpoint is not told
    bot_row = Voicebot.objects.create(account=api.account, name="Desk")
    call = Call.objects.create(account=api.account, voicebot=bot_row, status="ringing")
    claim_stream(StreamAccess(bot_row, call), "plivo-call-uuid", "stream-1")
    assert not WebhookEvent.objects.exists()


def test_a_campaign_reports_each_finished_contact_and_its_completion(api, running, now, fake_plivo, client):
    subscribe(api.account, "campaign.contact_finished", "campaign.completed")
    campaign = running(count=2, max_attempts=1)
    run_dispatch(campaign)
    hang_up(client, fake_plivo, "+12125550001")
    hang_up(client, fake_plivo, "+12125550002", status="busy", answered=False)
    run_dispatch(campaign)
    finished = bodies("campaign.contact_finished")
    assert [(b["data"]["contact"]["phone_number"], b["data"]["contact"]["state"]) for b in finished] == [
        ("+12125550001", "completed"), ("+12125550002", "failed")]
    assert finished[0]["data"]["campaign_id"] == campaign["id"]
    assert finished[0]["data"]["call_id"] == str(Call.objects.get(to_number="+12125550001").id)
    [completed] = bodies("campaign.completed")
    assert completed["data"]["id"] == campaign["id"] and completed["data"]["status"] == "completed"
    assert completed["data"]["progress"]["completed"] == 1


def test_a_contact_that_will_be_called_again_is_not_finished(api, running, now, fake_plivo, client):
    subscribe(api.account, "campaign.contact_finished")
    campaign = running(count=1, max_attempts=2)
    run_dispatch(campaign)
    hang_up(client, fake_plivo, "+12125550001", status="busy", answered=False)
    assert contact("+12125550001").state == "pending"
    assert bodies("campaign.contact_finished") == []
