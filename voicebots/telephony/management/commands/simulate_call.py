"""Call a bot the way Plivo would, from a WAV file, and print what happened."""
from __future__ import annotations

import asyncio
import time
import secrets
import uuid
from urllib.parse import urlsplit, urlunsplit
from xml.etree import ElementTree

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from voicebots.bots.models import Voicebot
from voicebots.bots.public_urls import websocket_url
from voicebots.calls.models import Call
from voicebots.providers.plivo_api import sign_like_plivo
from voicebots.telephony.simulator import PlivoCallSimulator, load_wav_as_mulaw, write_mulaw_wav


def _on_server(socket_url: str, server: str) -> str:
    """The stream URL with the scheme and host of the server we talk to (PUBLIC_BASE_URL may be a tunnel)."""
    target = urlsplit(server)
    scheme = "wss" if target.scheme == "https" else "ws"
    return urlunsplit(urlsplit(socket_url)._replace(scheme=scheme, netloc=target.netloc))


def answer(bot: Voicebot, server: str, params: dict[str, str]) -> str:
    """POST the answer request as Plivo does (signed with the account's Plivo token) and return the stream URL."""
    path = f"/v1/Account/{bot.account.auth_id}/Voicebot/{bot.id}/inbound_call"
    headers = {}
    if bot.account.plivo_auth_token:
        nonce = secrets.token_hex(10)
        headers = {"X-Plivo-Signature-V3-Nonce": nonce, "X-Plivo-Signature-V3": sign_like_plivo(
            url=settings.PUBLIC_BASE_URL + path, params={k: [v] for k, v in params.items()},
            auth_token=bot.account.plivo_auth_token, nonce=nonce)}
    response = httpx.post(server.rstrip("/") + path, data=params, headers=headers, timeout=10)
    if response.status_code != 200:
        raise CommandError(f"The answer URL said {response.status_code}: {response.text[:300]}")
    stream = ElementTree.fromstring(response.content).find("Stream")
    if stream is None or not stream.text:
        raise CommandError(f"The answer XML has no <Stream>: {response.text[:300]}")
    return _on_server(stream.text.strip(), server)


class Command(BaseCommand):
    help = "Simulate a Plivo call to a bot from a WAV file; saves what the bot said and prints the transcript."

    def add_arguments(self, parser):
        parser.add_argument("voicebot_id")
        parser.add_argument("--audio", required=True, help="WAV file with what the caller says.")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="The running server.")
        parser.add_argument("--out", default="bot.wav", help="Where to save what the bot said (WAV).")
        parser.add_argument("--dtmf", action="append", default=[], metavar="SECONDS:DIGITS",
                            help="Press keys at a time, e.g. 3.5:1 (repeatable).")
        parser.add_argument("--from", dest="caller", default="14155550100")
        parser.add_argument("--to", dest="callee", default="14155550199")
        parser.add_argument("--via-websocket-url", action="store_true",
                            help="Connect through the bot's websocket_url (the outbound flow) instead of answering.")
        parser.add_argument("--linger", type=float, default=2.0, help="Seconds of quiet before hanging up.")

    def handle(self, *args, voicebot_id, audio, url, out, dtmf, caller, callee, via_websocket_url, linger, **options):
        bot = Voicebot.objects.select_related("account").filter(pk=voicebot_id).first()
        if bot is None:
            raise CommandError(f"No voice bot {voicebot_id}.")
        try:
            caller_audio = load_wav_as_mulaw(audio)
        except (OSError, ValueError, EOFError) as exc:
            raise CommandError(f"Cannot read {audio}: {exc}")
        presses = []
        for item in dtmf:
            at, _, digits = item.partition(":")
            presses.extend((float(at), digit) for digit in digits)
        call_uuid = str(uuid.uuid4())
        if via_websocket_url:
            socket_url = _on_server(websocket_url(bot), url)
        else:
            socket_url = answer(bot, url, {"CallUUID": call_uuid, "From": caller, "To": callee,
                                           "Direction": "inbound", "CallStatus": "in-progress"})
        simulator = PlivoCallSimulator(socket_url, caller_audio=caller_audio, dtmf=presses, call_id=call_uuid,
                                       account_id=bot.account.plivo_auth_id or "MA00000000000000SIM0",
                                       linger_s=linger)
        result = asyncio.run(simulator.run())
        write_mulaw_wav(out, result.bot_audio)
        self._report(result, out, call_uuid, bot)

    def _report(self, result, out, call_uuid, bot) -> None:
        write = self.stdout.write
        if result.greeting_first_audio_ms is not None:
            write(f"Greeting: first audio {result.greeting_first_audio_ms:.0f} ms after start")
        for index, turn in enumerate(result.turns, 1):
            latency = f"{turn.latency_ms:.0f} ms" if turn.latency_ms is not None else "no answer"
            write(f"Utterance {index}: end of speech to first bot audio {latency}")
        write(f"Bot audio saved to {out} ({len(result.bot_audio) / 8000:.1f} s); "
              f"{len(result.checkpoints_acked)} checkpoints played, {result.clears} clears")
        call = Call.objects.filter(account=bot.account, call_uuid=call_uuid).first()
        for _ in range(20):  # the server finalizes the record just after the stream closes
            if call is None or call.has_ended:
                break
            time.sleep(0.1)
            call.refresh_from_db()
        if call is None:
            write("No call record was found for this call.")
            return
        write(f"Call {call.id}: {call.status}. {call.end_reason}")
        for turn in call.turns.all():
            if turn.caller_text:
                write(f"  Caller: {turn.caller_text}")
            timings = ", ".join(f"{k} {v:.0f}" for k, v in turn.timings.items() if isinstance(v, (int, float)))
            write(f"  Bot:    {turn.bot_text}{' (interrupted)' if turn.interrupted else ''}  [{timings}]")
        for event in call.events.all():
            write(f"  Event: {event.kind} {event.detail}")
