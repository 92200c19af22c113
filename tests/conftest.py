import base64
import json
import os

import pytest

pytest_plugins = ["tests.network_guard", "tests.virtual_time", "tests.quick_exit", "tests.browser",
                  "pytester"]


_durations: dict[str, float] = {}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Under `pytest -n`, each worker collects the tests slowest first (tests/scheduling.py)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        from tests.scheduling import slowest_first

        slowest_first(items)


def pytest_runtest_logreport(report):
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # the run's own process: it hears of every test
        _durations[report.nodeid] = _durations.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session):
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        from tests.scheduling import record_durations

        record_durations(_durations)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`pytest -n N` (--dist load, the default) shares the tests out as tests/scheduling.py says."""
    if config.getvalue("dist") == "load":
        from tests.scheduling import SuiteScheduling

        return SuiteScheduling(config, log)
    return None


@pytest.fixture(scope="session", autouse=True)
def _quick_flush(django_db_setup, django_db_blocker):
    """Transactional tests end by emptying only the tables they wrote (tests/database.py)."""
    from tests import database

    with django_db_blocker.unblock():
        database.install()
    yield
    database.uninstall()


@pytest.fixture(scope="session", autouse=True)
def _quick_password_hashing():
    """Users' passwords are hashed with few rounds (tests/passwords.py)."""
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["tests.passwords.QuickPBKDF2PasswordHasher"]):
        yield


@pytest.fixture(scope="session", autouse=True)
def _static_files_listed_once():
    """WhiteNoise lists the static files (~190, each looked up with its compressed variants) whenever the
    middleware is built, which Django's test client does for every test: ~30 ms each time. The files do not
    change during a run, so the list is made once and each new middleware gets it."""
    from whitenoise.middleware import WhiteNoiseMiddleware

    listed: dict[str, dict] = {}
    list_files = WhiteNoiseMiddleware.add_files_from_finders

    def add_files_from_finders(self):
        if self.static_prefix not in listed:
            others, self.files = self.files, {}
            list_files(self)
            listed[self.static_prefix], self.files = self.files, others
        self.files.update(listed[self.static_prefix])

    WhiteNoiseMiddleware.add_files_from_finders = add_files_from_finders
    yield
    WhiteNoiseMiddleware.add_files_from_finders = list_files


@pytest.fixture(scope="session", autouse=True)
def _no_stray_sessions_at_teardown(django_db_setup, django_db_blocker):
    """Calls' database threads outlive the tests that used them, and under pytest-django their last
    connections stay open; end them so the test database can be dropped. (PostgreSQL waits 5 s for other
    sessions before it refuses to drop a database, so a pool left to replace the connections ended here, as
    psycopg_pool keeps its `min_size`, costs those 5 s and leaves the database behind.)"""
    yield
    from django.db import connection

    from tests.database import is_test_database

    if not is_test_database(connection):
        return  # no test used the database: the connection is the development one's
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        connection.close()
        connection.close_pool()  # with the connections it would open again


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _eager_celery():
    """Tasks run in-process unless a test starts a real worker."""
    from config import celery_app

    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


class ApiClient:
    """The Django test client speaking to one account's API prefix with its credentials."""

    def __init__(self, client, account, token):
        self.client, self.account, self.token = client, account, token
        self.prefix = f"/v1/Account/{account.auth_id}/"
        credentials = base64.b64encode(f"{account.auth_id}:{token}".encode()).decode()
        self.headers = {"HTTP_AUTHORIZATION": f"Basic {credentials}"}

    def url(self, path: str) -> str:
        return path if path.startswith("/") else self.prefix + path

    def get(self, path, data=None, **extra):
        return self.client.get(self.url(path), data, **self.headers, **extra)

    def post(self, path, payload=None, **extra):
        return self.client.post(self.url(path), json.dumps(payload), content_type="application/json",
                                **self.headers, **extra)

    def patch(self, path, payload=None, **extra):
        return self.client.patch(self.url(path), json.dumps(payload), content_type="application/json",
                                 **self.headers, **extra)

    def delete(self, path, **extra):
        return self.client.delete(self.url(path), **self.headers, **extra)

    def upload(self, path, name, content: bytes, method="post"):
        from django.core.files.uploadedfile import SimpleUploadedFile
        from django.test.client import BOUNDARY, encode_multipart

        body = encode_multipart(BOUNDARY, {"file": SimpleUploadedFile(name, content)})
        send = getattr(self.client, method)
        return send(self.url(path), body, content_type=f"multipart/form-data; boundary={BOUNDARY}", **self.headers)


def make_api(client, name="Acme"):
    from voicebots.accounts.services import create_account

    account, token = create_account(name)
    return ApiClient(client, account, token)


@pytest.fixture
def api(db, client):
    return make_api(client, "Acme")


@pytest.fixture
def other_api(db):
    from django.test import Client

    return make_api(Client(), "Other Co")


@pytest.fixture
def fake_anthropic(settings):
    """A protocol-accurate Anthropic API on 127.0.0.1 that the app is pointed at."""
    from tests.fakes.anthropic_server import DEFAULT_API_KEY, FakeAnthropic

    fake = FakeAnthropic().start_in_thread()
    settings.ANTHROPIC_API_KEY = DEFAULT_API_KEY
    settings.ANTHROPIC_BASE_URL = fake.url
    yield fake
    fake.stop()


@pytest.fixture
def fake_openai(settings):
    """A protocol-accurate OpenAI-compatible server on 127.0.0.1 that the app is pointed at."""
    from tests.fakes.openai_server import FakeOpenAI

    fake = FakeOpenAI().start_in_thread()
    settings.OPENAI_API_KEY = fake.api_key
    settings.OPENAI_BASE_URL = fake.url
    yield fake
    fake.stop()


@pytest.fixture
def function_handler(settings):
    """A real local HTTP server standing in for a customer's function handler."""
    from tests.fakes.http_handler import FunctionHandlerFake

    handler = FunctionHandlerFake().start_in_thread()
    settings.FUNCTION_ALLOW_HTTP = True
    settings.FUNCTION_ALLOW_PRIVATE_ADDRESSES = True  # the handler listens on loopback
    yield handler
    handler.stop()


@pytest.fixture
def fast_plivo_failures(monkeypatch):
    """Retries of a failing Plivo API back off and time out quickly in tests."""
    from voicebots.providers import plivo_api
    from voicebots.telephony import rest

    monkeypatch.setattr(plivo_api, "RETRY_BACKOFF_S", 0.01)
    monkeypatch.setattr(rest, "REQUEST_TIMEOUT_S", 0.5)


@pytest.fixture
def fake_plivo(settings):
    """A protocol-accurate Plivo REST API on 127.0.0.1 that the app is pointed at."""
    from tests.fakes.plivo_server import FakePlivo

    fake = FakePlivo().start_in_thread()
    settings.PLIVO_API_BASE_URL = fake.url
    yield fake
    fake.stop()
