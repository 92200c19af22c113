"""GET/PATCH /v1/Account/{auth_id}/: the account itself; Plivo credentials checked with (fake) Plivo first."""
import pytest

from voicebots.accounts.models import Account


def account_path(api):
    return f"/v1/Account/{api.account.auth_id}/"


def test_get_shows_the_account_and_no_secret(api):
    for path in (account_path(api), account_path(api).rstrip("/")):
        response = api.get(path)
        assert response.status_code == 200
        body = response.json()
        assert body["auth_id"] == api.account.auth_id and body["name"] == "Acme"
        assert body["plivo_auth_id"] == "" and body["has_plivo_auth_token"] is False
        assert body["recording_retention_days"] == 30 and body["created_at"] and body["api_id"]
        assert not {"auth_token", "plivo_auth_token", "webhook_secret", "auth_token_hash"} & set(body)


def test_patch_sets_name_and_retention(api):
    response = api.patch(account_path(api), {"name": "Acme Dental", "recording_retention_days": 0})
    assert response.status_code == 204
    account = Account.objects.get(pk=api.account.pk)
    assert account.name == "Acme Dental" and account.recording_retention_days == 0


def test_good_plivo_credentials_are_checked_with_plivo_and_stored_encrypted(api, fake_plivo):
    response = api.patch(account_path(api), {"plivo_auth_id": fake_plivo.auth_id,
                                             "plivo_auth_token": fake_plivo.auth_token})
    assert response.status_code == 204
    checks = fake_plivo.requests_to("GET", f"/v1/Account/{fake_plivo.auth_id}/")
    assert len(checks) == 1 and checks[0].authorized
    body = api.get(account_path(api)).json()
    assert body["plivo_auth_id"] == fake_plivo.auth_id and body["has_plivo_auth_token"] is True
    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT plivo_auth_token FROM accounts_account WHERE id = %s", [api.account.pk])
        assert fake_plivo.auth_token not in cursor.fetchone()[0]


def test_wrong_plivo_credentials_are_a_400_that_says_so_and_change_nothing(api, fake_plivo):
    response = api.patch(account_path(api), {"name": "Renamed", "plivo_auth_id": fake_plivo.auth_id,
                                             "plivo_auth_token": "not-the-token"})
    assert response.status_code == 400
    body = response.json()
    assert "Plivo did not accept these credentials" in body["details"]["plivo_auth_token"][0]
    assert "401" in body["details"]["plivo_auth_token"][0]
    account = Account.objects.get(pk=api.account.pk)
    assert account.plivo_auth_token == "" and account.name == "Acme"


def test_a_malformed_plivo_auth_id_is_a_400(api, fake_plivo):
    response = api.patch(account_path(api), {"plivo_auth_id": "nonsense", "plivo_auth_token": "x" * 30})
    assert response.status_code == 400
    assert "Plivo did not accept" in response.json()["details"]["plivo_auth_token"][0]


def test_plivo_down_is_a_503_and_changes_nothing(api, fake_plivo, fast_plivo_failures):
    fake_plivo.fail_next(503, times=5)
    response = api.patch(account_path(api), {"plivo_auth_id": fake_plivo.auth_id,
                                             "plivo_auth_token": fake_plivo.auth_token})
    assert response.status_code == 503
    assert "could not be reached" in response.json()["error"]
    assert Account.objects.get(pk=api.account.pk).plivo_auth_id == ""


def test_a_new_token_for_the_stored_id_is_checked_too(api, fake_plivo):
    api.patch(account_path(api), {"plivo_auth_id": fake_plivo.auth_id, "plivo_auth_token": fake_plivo.auth_token})
    response = api.patch(account_path(api), {"plivo_auth_token": "stale-token"})
    assert response.status_code == 400
    assert Account.objects.get(pk=api.account.pk).plivo_auth_token == fake_plivo.auth_token
    # Changing something else does not ask Plivo again.
    asked = len(fake_plivo.requests)
    assert api.patch(account_path(api), {"name": "Again"}).status_code == 204
    assert len(fake_plivo.requests) == asked
    # Clearing both is allowed without asking.
    assert api.patch(account_path(api), {"plivo_auth_id": "", "plivo_auth_token": ""}).status_code == 204
    assert api.get(account_path(api)).json()["has_plivo_auth_token"] is False


@pytest.mark.parametrize("_case, payload, field", [
    ("id without token", {"plivo_auth_id": "MAXXXXXXXXXXXXXXXXXX"}, "plivo_auth_token"),
    ("negative retention", {"recording_retention_days": -1}, "recording_retention_days"),
    ("unknown field", {"auth_token": "mine"}, "auth_token"),
    ("empty name", {"name": ""}, "name"),
])
def test_bad_changes_are_400s_naming_the_field(api, _case, payload, field):
    response = api.patch(account_path(api), payload)
    assert response.status_code == 400
    assert field in response.json()["details"]


def test_another_accounts_credentials_get_nothing(api, other_api):
    response = other_api.client.get(account_path(api), **other_api.headers)
    assert response.status_code in (401, 403) and "auth_id" not in response.json()
    response = other_api.client.patch(account_path(api), '{"name": "Hijacked"}', content_type="application/json",
                                      **other_api.headers)
    assert response.status_code in (401, 403)
    assert Account.objects.get(pk=api.account.pk).name == "Acme"
    assert api.client.get(account_path(api)).status_code == 401  # no credentials


def test_other_methods_are_405(api):
    assert api.delete(account_path(api)).status_code == 405
    assert api.post(account_path(api), {}).status_code == 405
