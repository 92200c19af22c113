import base64
import json
import re

from django.core.management import call_command
from django.db import connection

from voicebots.accounts import services
from voicebots.accounts.models import Account


def basic(auth_id, token):
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{auth_id}:{token}".encode()).decode()}


def test_create_account_command_prints_credentials_as_json(db, capsys):
    call_command("create_account", "Scripted Ltd")
    printed = json.loads(capsys.readouterr().out)
    assert re.fullmatch(r"MA[A-Z0-9]{18}", printed["auth_id"])
    assert len(printed["auth_token"]) >= 32
    account = Account.objects.get(auth_id=printed["auth_id"])
    assert account.name == "Scripted Ltd"
    assert printed["auth_token"] not in account.auth_token_hash
    assert services.authenticate(printed["auth_id"], printed["auth_token"]) == account


def test_secrets_are_encrypted_at_rest(db):
    account, _ = services.create_account("Secretive")
    account.plivo_auth_id = "MAPLIVOID0000000000"
    account.plivo_auth_token = "plivo-secret-token-value"
    account.save()
    with connection.cursor() as cursor:
        cursor.execute("select plivo_auth_token, webhook_secret from accounts_account where id = %s", [account.pk])
        stored_token, stored_secret = cursor.fetchone()
    assert "plivo-secret-token-value" not in stored_token
    assert stored_secret != Account.objects.get(pk=account.pk).webhook_secret
    assert Account.objects.get(pk=account.pk).plivo_auth_token == "plivo-secret-token-value"


def test_reissued_token_replaces_the_old_one(api, client):
    old_token = api.token
    new_token = services.reissue_token(api.account)
    path = f"/v1/Account/{api.account.auth_id}/Voicebot/"
    assert client.get(path, **basic(api.account.auth_id, old_token)).status_code == 401
    assert client.get(path, **basic(api.account.auth_id, new_token)).status_code == 200


def test_missing_credentials_are_401_with_basic_challenge(api, client):
    response = client.get(f"/v1/Account/{api.account.auth_id}/Voicebot/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")
    assert set(response.json()) == {"api_id", "error"}


def test_wrong_credentials_are_401(api, client):
    path = f"/v1/Account/{api.account.auth_id}/Voicebot/"
    for headers in (
        basic(api.account.auth_id, "not-the-token"),
        basic("MA000000000000000000", api.token),
        {"HTTP_AUTHORIZATION": "Basic !!!not-base64"},
        {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"no-colon").decode()},
    ):
        response = client.get(path, **headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]


def test_credentials_of_one_account_on_another_accounts_path_get_no_data(api, other_api, client):
    other_api.post("Voicebot/", {"name": "Theirs"})
    response = client.get(f"/v1/Account/{other_api.account.auth_id}/Voicebot/", **api.headers)
    assert response.status_code == 403
    assert "voicebots" not in response.json()


def test_browser_session_of_a_member_can_use_its_accounts_api(api, client):
    services.create_member(api.account, "member", "a-long-password-123")
    client.login(username="member", password="a-long-password-123")
    assert client.get(f"/v1/Account/{api.account.auth_id}/Voicebot/").status_code == 200
