"""Secure by default in production; development defaults only under `make run`; admin sign-in brute force."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from voicebots.accounts.services import create_member

ROOT = Path(__file__).resolve().parent.parent
SECURITY_VARIABLES = ("DEBUG", "PUBLIC_BASE_URL", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS",
                      "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SESSION_COOKIE_SECURE",
                      "CSRF_COOKIE_SECURE")


def settings_in_a_fresh_process(environment: dict, *names: str) -> list[str]:
    """The values of `names` as a process started with `environment` (over ours, minus any security variable) sees."""
    env = {k: v for k, v in os.environ.items() if k not in SECURITY_VARIABLES}
    env.update(environment)
    # Only the settings module is read (no django.setup(): loading the apps would add ~2 s to each process).
    code = "from django.conf import settings; " + \
           "".join(f"print(repr(settings.{name}));" for name in names)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE":
                            "config.settings"}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def documented_production_environment() -> dict:
    """The security settings .env.example documents for production, with a real secret key."""
    documented = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#") and (name in SECURITY_VARIABLES or name in (
                "ALLOWED_HOSTS", "PUBLIC_BASE_URL", "TRUST_PROXY_HEADERS")):
            documented[name] = value
    assert {"DEBUG", "PUBLIC_BASE_URL", "SECURE_HSTS_SECONDS", "SESSION_COOKIE_SECURE"} <= set(documented), documented
    # A production deployment has its vendors' keys (without them the start-up checks say which is missing).
    keys = {name: "set-in-production" for name in ("ANTHROPIC_API_KEY", "DEEPGRAM_API_KEY", "CARTESIA_API_KEY")}
    return {**documented, **keys, "SECRET_KEY": secrets.token_urlsafe(50)}


def test_debug_is_off_unless_asked_for():
    assert settings_in_a_fresh_process({}, "DEBUG") == ["False"]
    assert settings_in_a_fresh_process({"DEBUG": "true"}, "DEBUG") == ["True"]


def test_production_defaults_are_secure_and_each_can_be_set_from_the_environment():
    https = {"PUBLIC_BASE_URL": "https://bots.example.com"}
    secure = settings_in_a_fresh_process(https, "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
                                         "SECURE_HSTS_SECONDS")
    assert secure == ["True", "True", "True", "31536000"]
    relaxed = settings_in_a_fresh_process({**https, "SECURE_SSL_REDIRECT": "false", "SESSION_COOKIE_SECURE": "false",
                                           "CSRF_COOKIE_SECURE": "false", "SECURE_HSTS_SECONDS": "0"},
                                          "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
                                          "SECURE_HSTS_SECONDS")
    assert relaxed == ["False", "False", "False", "0"]


def test_a_plain_http_public_url_gets_no_https_protections():
    local = settings_in_a_fresh_process({"PUBLIC_BASE_URL": "http://127.0.0.1:8000"}, "SECURE_SSL_REDIRECT",
                                        "SESSION_COOKIE_SECURE", "SECURE_HSTS_SECONDS")
    assert local == ["False", "False", "0"]


def test_make_run_is_the_development_mode():
    # Under `make test` the inner make would print "Leaving directory" lines and inherit the outer flags.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    dry_run = subprocess.run(["make", "--no-print-directory", "-n", "run"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    command = dry_run.stdout.strip().splitlines()[-1]
    assert "manage.py run" in command and "DEBUG=" in command and "true" in command


def test_check_deploy_is_clean_with_the_documented_production_settings():
    env = {k: v for k, v in os.environ.items() if k not in SECURITY_VARIABLES}
    env.update(documented_production_environment(), DJANGO_SETTINGS_MODULE="config.settings")
    # -X importtime lists every module imported, on stderr.
    result = subprocess.run([sys.executable, "-X", "importtime", "manage.py", "check", "--deploy", "--fail-level",
                             "WARNING"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "no issues" in result.stdout
    # A command loads no vendor SDK (~1.5 s of CPU at each start); web processes load them as they start.
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time")}
    assert "django.db" in imported  # the list is read right
    assert not {"anthropic", "openai", "deepgram", "cartesia"} & imported


def test_error_pages_do_not_list_url_patterns(client, db):
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and b"admin/" not in page.content and b"URLconf" not in page.content


# --- Admin sign-in: a lockout per user name and address after repeated failures ----------------------------

@pytest.fixture
def staffer(api):
    """A member with a name of this test's own: failure counts live in the cache, which outlives a test."""
    return create_member(api.account, f"staffer-{secrets.token_hex(4)}", "the-right-password-123")


@pytest.fixture
def sign_in(client, staffer):
    def attempt(password, address="203.0.113.7"):
        return client.post("/admin/login/?next=/admin/", {"username": staffer.username, "password": password},
                           REMOTE_ADDR=address)
    return attempt


def test_repeated_failed_sign_ins_lock_that_user_out_from_that_address(client, sign_in, settings):
    settings.ADMIN_LOGIN_MAX_FAILURES = 3
    for _ in range(3):
        failed = sign_in("wrong")
        assert failed.status_code == 200 and b"Too many failed" not in failed.content
    locked = sign_in("the-right-password-123")
    assert locked.status_code == 200 and b"Too many failed sign-ins" in locked.content
    assert b"Try again in 15 minutes" in locked.content
    assert "_auth_user_id" not in client.session
    # The same user from another address is not locked out.
    assert sign_in("the-right-password-123", address="198.51.100.9").status_code == 302


def test_the_lockout_ends_after_its_window(sign_in, settings):
    import time

    settings.ADMIN_LOGIN_MAX_FAILURES = 2
    settings.ADMIN_LOGIN_LOCKOUT_SECONDS = 1
    sign_in("wrong")
    sign_in("wrong")
    assert b"Too many failed sign-ins" in sign_in("the-right-password-123").content
    time.sleep(1.5)
    assert sign_in("the-right-password-123").status_code == 302


def test_a_successful_sign_in_forgets_earlier_failures(client, sign_in, settings):
    settings.ADMIN_LOGIN_MAX_FAILURES = 2
    sign_in("wrong")
    assert sign_in("the-right-password-123").status_code == 302
    client.logout()
    sign_in("wrong")
    assert sign_in("the-right-password-123").status_code == 302


def test_behind_a_trusted_proxy_the_forwarded_address_counts(client, staffer, settings):
    settings.TRUST_PROXY_HEADERS = True
    settings.ADMIN_LOGIN_MAX_FAILURES = 1

    def attempt(password, forwarded):
        return client.post("/admin/login/?next=/admin/", {"username": staffer.username, "password": password},
                           REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=f"1.2.3.4, {forwarded}")
    attempt("wrong", "203.0.113.50")
    assert b"Too many failed" in attempt("the-right-password-123", "203.0.113.50").content
    assert attempt("the-right-password-123", "203.0.113.51").status_code == 302
