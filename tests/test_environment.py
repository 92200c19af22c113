"""Settings from the environment are checked when a process starts, with one clear message."""
import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from config import environment
from tests.fakes.deepgram_server import FakeDeepgram, silence, speech
from voicebots.providers.deepgram_stt import DeepgramSTT
from voicebots.voice.ports import Transcript

ROOT = Path(__file__).resolve().parent.parent


def test_each_malformed_setting_is_named_with_what_it_takes():
    found = environment.problems({
        "DEBUG": "ture", "DB_POOL": "yes", "STT_ENDPOINTING_MS": "3OO", "DB_POOL_MAX_SIZE": "0",
        "DEEPGRAM_BASE_URL": "api.deepgram.com", "ANTHROPIC_BASE_URL": "wss://api.anthropic.com",
        "REDIS_URL": "redis://", "PUBLIC_BASE_URL": "", "MAX_CALLS_PER_PROCESS": "-1",
    })
    assert sorted(found) == sorted([
        "DEBUG: 'ture' is not a boolean: use true or false (also 1/0, yes/no, on/off).",
        "DB_POOL_MAX_SIZE: 0 is out of range: use a number from 1 to 1000.",
        "STT_ENDPOINTING_MS: '3OO' is not a whole number.",
        "MAX_CALLS_PER_PROCESS: -1 is out of range: use a number from 1 to 10000.",
        "DEEPGRAM_BASE_URL: 'api.deepgram.com' must start with http://, https://, ws:// or wss://.",
        "ANTHROPIC_BASE_URL: 'wss://api.anthropic.com' must start with http:// or https://.",
        "REDIS_URL: 'redis://' has no host name.",
    ])


def test_security_switches_and_fractional_numbers_are_checked_too():
    found = environment.problems({"SESSION_COOKIE_SECURE": "ture", "WEBHOOK_TIMEOUT_SECONDS": "ten",
                                  "EMBEDDING_TIMEOUT_S": "0", "BROWSER_CALL_MAX_SECONDS": "1.5"})
    assert sorted(found) == sorted([
        "SESSION_COOKIE_SECURE: 'ture' is not a boolean: use true or false (also 1/0, yes/no, on/off).",
        "WEBHOOK_TIMEOUT_SECONDS: 'ten' is not a number.",
        "EMBEDDING_TIMEOUT_S: 0 is out of range: use a number of at least 0.1.",
        "BROWSER_CALL_MAX_SECONDS: '1.5' is not a whole number.",
    ])


def test_every_boolean_and_number_the_settings_read_is_checked_at_start():
    source = (ROOT / "config" / "settings.py").read_text()
    read = {
        "boolean": set(re.findall(r'env_bool\("([A-Z_0-9]+)"', source)),
        "whole number": set(re.findall(r'int\(env\("([A-Z_0-9]+)"', source)),
        "number": set(re.findall(r'float\(env\("([A-Z_0-9]+)"', source)),
    }
    assert read["boolean"] and read["whole number"] and read["number"]  # the patterns still match the file
    assert read["boolean"] - set(environment.BOOLEANS) == set()
    assert read["whole number"] - set(environment.INTEGERS) == set()
    assert read["number"] - set(environment.NUMBERS) == set()


def test_good_values_pass_including_the_embedded_servers_urls():
    assert environment.problems({
        "DEBUG": "False", "DB_POOL": "1", "DEEPGRAM_BASE_URL": "wss://dg.internal:8443/", "PORT": "8000",
        "DATABASE_URL": "postgresql://postgres:@/postgres?host=/srv/.dev/pgdata", "REDIS_URL": "unix:///tmp/r.sock",
        "WEB_PROCESSES": "", "DRAIN_TIMEOUT_S": "0",
    }) == []


@pytest.mark.parametrize("given, expected", [
    ("wss://api.deepgram.com", "https://api.deepgram.com"), ("ws://127.0.0.1:9000/", "http://127.0.0.1:9000"),
    ("https://api.cartesia.ai", "https://api.cartesia.ai"), ("WSS://eu.example", "https://eu.example"),
])
def test_a_vendor_url_is_normalised_to_the_http_form_its_clients_derive_the_socket_from(given, expected):
    assert environment.vendor_base_url(given) == expected


def run_manage(args: list[str], **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


def test_a_process_started_with_bad_settings_stops_at_once_with_the_message_and_no_traceback():
    result = run_manage(["run"], DEEPGRAM_BASE_URL="ftp://dg", PLIVO_VERIFY_SIGNATURES="maybe")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Voicebots cannot start" in result.stderr
    assert "PLIVO_VERIFY_SIGNATURES: 'maybe' is not a boolean" in result.stderr
    assert "DEEPGRAM_BASE_URL: 'ftp://dg' must start with" in result.stderr


async def test_a_websocket_deepgram_url_is_accepted_and_calls_transcribe_through_it():
    """DEEPGRAM_BASE_URL=ws://... used to fail each call with "isn't a valid URI"; now it reaches Deepgram."""
    async with FakeDeepgram(["Hello there."]) as fake:
        assert fake.ws_url.startswith("ws://")
        script = ("from django.conf import settings; from voicebots.callruntime import vendors; "
                  "from voicebots.bots.models import Voicebot; from voicebots.voice.audio import MULAW_8K; "
                  "print(settings.DEEPGRAM_BASE_URL); "
                  "print(vendors.speech_to_text(Voicebot(stt_language='en'), MULAW_8K)._url)")
        result = await asyncio.to_thread(run_manage, ["shell", "-c", script], DEEPGRAM_BASE_URL=fake.ws_url,
                                  DEEPGRAM_API_KEY=fake.api_key)
        assert result.returncode == 0, result.stderr
        http_url, socket_url = result.stdout.split()[-2:]
        assert http_url == fake.ws_url.replace("ws://", "http://")
        assert socket_url == fake.ws_url + "/v1/listen"

        stt = DeepgramSTT(fake.api_key, websocket_url=socket_url.removesuffix("/v1/listen"), endpointing_ms=100)
        await stt.connect()
        await stt.send_audio(speech(400) + silence(400))
        async with asyncio.timeout(10):
            async for event in stt.events():
                if isinstance(event, Transcript) and event.is_final:
                    assert event.text == "Hello there."
                    break
        await stt.aclose()



def test_the_example_environment_passes_the_check():
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value
    assert "DEEPGRAM_BASE_URL" in values and "MAX_CALLS_PER_PROCESS" in values
    assert environment.problems(values) == []


def test_each_test_worker_keeps_its_redis_data_in_a_database_of_its_own():
    from config.settings import redis_url_for_test_worker as for_worker

    assert for_worker("unix:///srv/.dev/redis.socket", "gw0") == "unix:///srv/.dev/redis.socket?db=1"
    assert for_worker("unix:///srv/.dev/redis.socket", "gw3") == "unix:///srv/.dev/redis.socket?db=4"
    assert for_worker("redis://cache:6379", "gw1") == "redis://cache:6379/2"
    # A process a test starts is given its worker's URL, which names a database already.
    assert for_worker("unix:///srv/.dev/redis.socket?db=4", "gw0") == "unix:///srv/.dev/redis.socket?db=4"
    assert for_worker("redis://cache:6379/7", "gw1") == "redis://cache:6379/7"
