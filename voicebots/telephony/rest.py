"""Plivo REST calls with the account's Plivo credentials: placing, hanging up and transferring calls."""
from __future__ import annotations

import logging
import threading

from django.conf import settings

from voicebots.calls import services as calls
from voicebots.calls.models import Call
from voicebots.providers.plivo_api import PlivoApi, PlivoApiError

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 10.0
DEFAULT_RING_TIMEOUT_S = 30
MAX_CLIENTS_PER_THREAD = 32
_thread_clients = threading.local()  # the SDK's client is not safe to share between threads


class PlivoNotConfigured(Exception):
    def __init__(self) -> None:
        super().__init__("This account has no Plivo credentials: set its Plivo auth id and auth token "
                         "(admin: Accounts) before calling or configuring numbers.")


def plivo_api_for(account) -> PlivoApi:
    """The account's Plivo client; one per thread and credentials, so its HTTPS connections are reused."""
    if not (account.plivo_auth_id and account.plivo_auth_token):
        raise PlivoNotConfigured()
    key = (account.plivo_auth_id, account.plivo_auth_token, settings.PLIVO_API_BASE_URL, REQUEST_TIMEOUT_S)
    clients = _thread_clients.__dict__.setdefault("by_key", {})
    if key not in clients:
        if len(clients) >= MAX_CLIENTS_PER_THREAD:
            clients.clear()
        clients[key] = PlivoApi(*key[:3], timeout=REQUEST_TIMEOUT_S)
    return clients[key]


def call_url(call: Call, action: str) -> str:
    """Our per-call callback URLs: answer, ring, hangup, machine, voicemail."""
    return f"{settings.PUBLIC_BASE_URL}/v1/Account/{call.account.auth_id}/Call/{call.id}/{action}"


def place_call(call: Call, *, ring_timeout: int = DEFAULT_RING_TIMEOUT_S, machine_detection: str | None = None,
               voicemail_message: str = "") -> Call:
    """Ask Plivo to dial a new outbound call record; its status then follows Plivo's callbacks.

    Raises PlivoNotConfigured or PlivoApiError (after retries), with the call marked failed and why.
    """
    calls.record_dial(call, ring_timeout=ring_timeout, machine_detection=machine_detection or "",
                      voicemail_message=voicemail_message)
    try:
        api = plivo_api_for(call.account)
        request_uuid = api.create_call(
            from_number=call.from_number, to_number=call.to_number, answer_url=call_url(call, "answer"),
            hangup_url=call_url(call, "hangup"), ring_url=call_url(call, "ring"), ring_timeout=ring_timeout,
            time_limit=call.voicebot.max_call_duration if call.voicebot else None,
            machine_detection=machine_detection,
            # Asynchronous detection: a person hears the bot at once instead of seconds of silence.
            machine_detection_url=call_url(call, "machine") if machine_detection else None,
        )
    except (PlivoNotConfigured, PlivoApiError) as error:
        calls.finalize(call, status=Call.Status.FAILED, reason=f"Plivo did not place the call: {error}")
        raise
    calls.mark_placed(call, request_uuid)
    return call


def end_call(call: Call) -> bool:
    """Ask Plivo to end the call (cancel it when it has not been answered yet).

    False when there is nothing Plivo could end: never placed, or Plivo no longer knows it (it is over).
    Raises PlivoNotConfigured or PlivoApiError.
    """
    if not (call.call_uuid or call.request_uuid):
        return False
    api = plivo_api_for(call.account)
    if call.call_uuid:
        return api.hang_up(call.call_uuid)
    return api.cancel_request(call.request_uuid)  # no callback has told us its CallUUID yet


def hang_up_call(call: Call) -> bool:
    """end_call for the stream's side: failures are recorded on the call, never raised."""
    try:
        return end_call(call)
    except PlivoNotConfigured:
        return False
    except PlivoApiError as error:
        logger.warning("Plivo hang-up of call %s failed: %s", call.id, error)
        calls.record_event(call, "hangup_failed", error=str(error)[:500])
        return False


def send_to_voicemail(call: Call) -> None:
    """Move a live call to our voicemail XML (the message, then hang up)."""
    plivo_api_for(call.account).transfer(call.call_uuid, call_url(call, "voicemail"))


def transfer_call(call: Call, destination: str, summary: str = "") -> bool:
    """Move a live call to `destination` (E.164 or sip: URI), warm when a `summary` is given (the person who
    answers hears it first: see transfer.py); failures are recorded on the call, never raised."""
    from .transfer import transfer_url

    try:
        plivo_api_for(call.account).transfer(call.call_uuid, transfer_url(call.id, destination, summary))
    except (PlivoNotConfigured, PlivoApiError) as error:
        logger.warning("Plivo transfer of call %s failed: %s", call.id, error)
        calls.record_event(call, "transfer_error", destination=destination, error=str(error)[:500])
        return False
    calls.record_event(call, "transferred", destination=destination, **({"summary": summary} if summary else {}))
    return True
