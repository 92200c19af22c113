"""Transfer of a live call: Plivo fetches the XML that dials the destination, cold or warm.

The session asks the transport to transfer; the consumer calls `rest.transfer_call`, which points the call's A leg
at `transfer_url` (Plivo's calls.update with aleg_url). That URL carries a signed token naming the call and the
destination, so this view needs no database lookup and cannot be used to dial anywhere else.

Warm transfer (a `summary`, from live control): the Dial gets Plivo's `confirmSound`, a URL Plivo fetches when
the person called answers, whose Speak is played to them alone before the caller is joined; the caller hears
ringing meanwhile. The summary travels in that URL's own signed token. If nobody answers, the Dial ends and so
does the call, as with a cold transfer.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

from django.conf import settings
from django.core import signing
from django.http import HttpResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from voicebots.api.errors import error_response

_SALT = "voicebots.telephony.transfer"
_ANNOUNCEMENT_SALT = "voicebots.telephony.transfer.announcement"
TOKEN_MAX_AGE_S = 300  # Plivo fetches the URL within seconds of our request
ANNOUNCEMENT_MAX_AGE_S = 900  # fetched when the person called answers, after it rang for a while
SUMMARY_MAX_CHARS = 1000


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


def dial_xml(destination: str, announcement: str = "") -> str:
    """Plivo XML dialing a phone number (E.164, sent without the +) or a SIP endpoint (<User>); with an
    `announcement` URL, it is played to the person who answers before the caller is joined."""
    response = ET.Element("Response")
    dial = ET.SubElement(response, "Dial", {"confirmSound": announcement} if announcement else {})
    if destination.startswith(("sip:", "sips:")):
        ET.SubElement(dial, "User").text = destination
    else:
        ET.SubElement(dial, "Number").text = destination.lstrip("+")
    return _document(response)


def speak_xml(text: str) -> str:
    response = ET.Element("Response")
    ET.SubElement(response, "Speak").text = text
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
    return HttpResponse(dial_xml(payload["to"], announcement), content_type="application/xml")


@csrf_exempt
def transfer_announcement(request, call_id):
    """Plivo's confirmSound of a warm transfer: what the person who answers hears first."""
    if request.method not in ("GET", "POST"):
        return error_response(405, "Use GET or POST.")
    payload = _payload(call_id, request.GET.get("token", ""), _ANNOUNCEMENT_SALT, ANNOUNCEMENT_MAX_AGE_S)
    if not payload or not payload.get("summary"):
        return error_response(403, "The announcement token is missing, expired or not for this call.")
    return HttpResponse(speak_xml(payload["summary"]), content_type="application/xml")
