"""Transfer of a live call: Plivo fetches the XML that dials the destination, cold or warm.

The session asks the transport to transfer; the consumer calls `rest.transfer_call`, which points the call's A leg
at `transfer_url` (Plivo's calls.update with aleg_url). That URL carries a signed token naming the call and the
destination, so this view needs no database lookup and cannot be used to dial anywhere else.

Warm transfer (a `summary`, from live control): the Dial gets Plivo's `confirmSound`, a URL Plivo fetches when
the person called answers, whose Speak is played to them alone before the caller is joined; the caller hears
ringing meanwhile. The summary travels in that URL's own signed token. With `confirmKey`, the caller is joined
only when that person presses 1, so a voicemail or a phone menu that picks up never takes the caller.

Either way the Dial rings for `RING_TIMEOUT_S` and then Plivo posts its outcome to the Dial's `action`: if
nobody took the call (no answer, busy, failed), the caller is told so before the line closes, and the call's
record says what happened.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from django.conf import settings
from django.core import signing
from django.http import HttpResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from voicebots.api.errors import error_response
from voicebots.calls.models import Call
from voicebots.calls.services import record_event

_SALT = "voicebots.telephony.transfer"
_ANNOUNCEMENT_SALT = "voicebots.telephony.transfer.announcement"
_RESULT_SALT = "voicebots.telephony.transfer.result"
TOKEN_MAX_AGE_S = 300  # Plivo fetches the URL within seconds of our request
ANNOUNCEMENT_MAX_AGE_S = 900  # fetched when the person called answers, after it rang for a while
SUMMARY_MAX_CHARS = 1000
RING_TIMEOUT_S = 30  # how long the person called may take to answer
CONFIRM_KEY = "1"  # what they press to take a warm transfer
RESULT_MAX_AGE_S = 3 * 3600  # the Dial's outcome comes when the transferred conversation ends
TAKE_THE_CALL = f"Press {CONFIRM_KEY} to take the call."
NOBODY_ANSWERED = "I'm sorry, nobody could take your call right now. Please call again later. Goodbye."


def transfer_url(call_id, destination: str, summary: str = "") -> str:
    token = signing.dumps({"call": str(call_id), "to": destination, "summary": summary[:SUMMARY_MAX_CHARS]},
                          salt=_SALT, compress=True)
    path = reverse("plivo-transfer", kwargs={"call_id": call_id})
    return f"{settings.PUBLIC_BASE_URL}{path}?token={token}"


def _payload(call_id, token: str, salt: str, max_age: int) -> dict | None:
    try:
        payload = signing.loads(token, salt=salt, max_age=max_age)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    return payload if payload.get("call") == str(call_id) else None


def destination_from_token(call_id, token: str) -> str | None:
    """The destination the token was made for, or None when it is forged, expired or for another call."""
    payload = _payload(call_id, token, _SALT, TOKEN_MAX_AGE_S)
    return payload.get("to") if payload else None


def announcement_url(call_id, summary: str) -> str:
    token = signing.dumps({"call": str(call_id), "summary": summary}, salt=_ANNOUNCEMENT_SALT, compress=True)
    path = reverse("plivo-transfer-announcement", kwargs={"call_id": call_id})
    return f"{settings.PUBLIC_BASE_URL}{path}?token={token}"


def result_url(call_id) -> str:
    token = signing.dumps({"call": str(call_id)}, salt=_RESULT_SALT)
    path = reverse("plivo-transfer-result", kwargs={"call_id": call_id})
    return f"{settings.PUBLIC_BASE_URL}{path}?token={token}"


def dial_xml(destination: str, announcement: str = "", action: str = "") -> str:
    """Plivo XML dialing a phone number (E.164, sent without the +) or a SIP endpoint (<User>); with an
    `announcement` URL, it is played to the person who answers, who takes the call by pressing CONFIRM_KEY;
    Plivo posts the Dial's outcome to `action`."""
    response = ET.Element("Response")
    attributes = {"timeout": str(RING_TIMEOUT_S)}
    if action:
        attributes |= {"action": action, "method": "POST"}
    if announcement:
        attributes |= {"confirmSound": announcement, "confirmKey": CONFIRM_KEY}
    dial = ET.SubElement(response, "Dial", attributes)
    if destination.startswith(("sip:", "sips:")):
        ET.SubElement(dial, "User").text = destination
    else:
        ET.SubElement(dial, "Number").text = destination.lstrip("+")
    return _document(response)


def speak_xml(text: str, *, then_hang_up: bool = False) -> str:
    response = ET.Element("Response")
    ET.SubElement(response, "Speak").text = text
    if then_hang_up:
        ET.SubElement(response, "Hangup")
    return _document(response)


def _document(response: ET.Element) -> str:
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(response, encoding="unicode")


@csrf_exempt
def transfer_xml(request, call_id):
    if request.method not in ("GET", "POST"):
        return error_response(405, "Use GET or POST.")
    payload = _payload(call_id, request.GET.get("token", ""), _SALT, TOKEN_MAX_AGE_S)
    if not payload or not payload.get("to"):
        return error_response(403, "The transfer token is missing, expired or not for this call.")
    summary = payload.get("summary") or ""
    announcement = announcement_url(call_id, summary) if summary else ""
    xml = dial_xml(payload["to"], announcement, action=result_url(call_id))
    return HttpResponse(xml, content_type="application/xml")


@csrf_exempt
def transfer_announcement(request, call_id):
    """Plivo's confirmSound of a warm transfer: what the person who answers hears first."""
    if request.method not in ("GET", "POST"):
        return error_response(405, "Use GET or POST.")
    payload = _payload(call_id, request.GET.get("token", ""), _ANNOUNCEMENT_SALT, ANNOUNCEMENT_MAX_AGE_S)
    if not payload or not payload.get("summary"):
        return error_response(403, "The announcement token is missing, expired or not for this call.")
    return HttpResponse(speak_xml(f"{payload['summary']} {TAKE_THE_CALL}"), content_type="application/xml")


@csrf_exempt
def transfer_result(request, call_id):
    """The Dial's `action`: Plivo posts how the transfer ended. A caller nobody took is told so, not dropped."""
    if request.method != "POST":
        return error_response(405, "Use POST.")
    if not _payload(call_id, request.GET.get("token", ""), _RESULT_SALT, RESULT_MAX_AGE_S):
        return error_response(403, "The result token is missing, expired or not for this call.")
    status = request.POST.get("DialStatus", "")
    call = Call.objects.filter(pk=call_id).first()  # the signed token names the call: no account to scope by
    if status == "completed":
        return HttpResponse(_document(ET.Element("Response")), content_type="application/xml")
    if call is not None:
        record_event(call, "transfer_unanswered", status=status or "unknown")
    return HttpResponse(speak_xml(NOBODY_ANSWERED, then_hang_up=True), content_type="application/xml")
