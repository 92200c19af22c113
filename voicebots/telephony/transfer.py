"""Cold transfer of a live call: Plivo fetches the XML that dials the bot's transfer destination.

The session asks the transport to transfer; the consumer calls `rest.transfer_call`, which points the call's A leg
at `transfer_url` (Plivo's calls.update with aleg_url). That URL carries a signed token naming the call and the
destination, so this view needs no database lookup and cannot be used to dial anywhere else.
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
TOKEN_MAX_AGE_S = 300  # Plivo fetches the URL within seconds of our request


def transfer_url(call_id, destination: str) -> str:
    token = signing.dumps({"call": str(call_id), "to": destination}, salt=_SALT)
    path = reverse("plivo-transfer", kwargs={"call_id": call_id})
    return f"{settings.PUBLIC_BASE_URL}{path}?token={token}"


def destination_from_token(call_id, token: str) -> str | None:
    """The destination the token was made for, or None when it is forged, expired or for another call."""
    try:
        payload = signing.loads(token, salt=_SALT, max_age=TOKEN_MAX_AGE_S)
    except signing.BadSignature:  # includes SignatureExpired
        return None
    return payload.get("to") if payload.get("call") == str(call_id) else None


def dial_xml(destination: str) -> str:
    """Plivo XML dialing a phone number (E.164, sent without the +) or a SIP endpoint (<User>)."""
    response = ET.Element("Response")
    dial = ET.SubElement(response, "Dial")
    if destination.startswith(("sip:", "sips:")):
        ET.SubElement(dial, "User").text = destination
    else:
        ET.SubElement(dial, "Number").text = destination.lstrip("+")
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(response, encoding="unicode")


@csrf_exempt
def transfer_xml(request, call_id):
    if request.method not in ("GET", "POST"):
        return error_response(405, "Use GET or POST.")
    destination = destination_from_token(call_id, request.GET.get("token", ""))
    if not destination:
        return error_response(403, "The transfer token is missing, expired or not for this call.")
    return HttpResponse(dial_xml(destination), content_type="application/xml")
