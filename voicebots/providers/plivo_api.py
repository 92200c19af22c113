"""Plivo through its SDK: webhook signatures (V3), answer XML, and the REST client."""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import plivo
from plivo import plivoxml
from plivo.utils.signature_v3 import construct_post_url, get_signature_v3, validate_v3_signature

logger = logging.getLogger(__name__)

ParamLists = Mapping[str, Sequence[str]]


def _sdk_params(params: ParamLists) -> dict:
    return {key: (list(values) if len(values) > 1 else values[0]) for key, values in params.items() if values}


def signature_is_valid(*, url: str, params: ParamLists, nonce: str | None, signature: str | None,
                       auth_token: str, method: str = "POST") -> bool:
    """Whether X-Plivo-Signature-V3 matches: HMAC-SHA256 of the URL Plivo called, its params and the nonce."""
    if not (nonce and signature and auth_token):
        return False
    try:
        return validate_v3_signature(method.upper(), url, nonce, auth_token, signature, _sdk_params(params))
    except Exception:  # the SDK raises on malformed input instead of answering False
        logger.info("Malformed Plivo signature headers on %s", url)
        return False


def sign_like_plivo(*, url: str, params: ParamLists, auth_token: str, nonce: str) -> str:
    """The X-Plivo-Signature-V3 Plivo would send for a POST (for the call simulator and tests)."""
    base = construct_post_url(url, _sdk_params(params)).decode()
    return get_signature_v3(auth_token.encode(), base, nonce.encode()).decode()


def stream_answer_xml(websocket_url: str, status_callback_url: str) -> str:
    """<Response><Stream>: bidirectional mu-law 8 kHz audio, the call kept alive while the stream runs."""
    stream = plivoxml.StreamElement(
        websocket_url, bidirectional=True, audioTrack="inbound", keepCallAlive=True,
        contentType="audio/x-mulaw;rate=8000", statusCallbackUrl=status_callback_url, statusCallbackMethod="POST",
    )
    return plivoxml.ResponseElement().add(stream).to_string(pretty=False)


def speak_and_hangup_xml(text: str) -> str:
    response = plivoxml.ResponseElement()
    response.add(plivoxml.SpeakElement(text))
    response.add(plivoxml.HangupElement())
    return response.to_string(pretty=False)


def rest_client(auth_id: str, auth_token: str, base_url: str, timeout: float = 10) -> plivo.RestClient:
    """A REST client aimed at `base_url` (Plivo's, a regional endpoint, or a local fake)."""
    client = plivo.RestClient(auth_id=auth_id, auth_token=auth_token, timeout=timeout)
    api = f"{base_url.rstrip('/')}/v1/Account"
    client.base_uri = api
    # The SDK resets base_uri per request from these module constants, so point them there too.
    plivo.rest.client.PLIVO_API_BASE_URI = api
    plivo.rest.client.API_VOICE_BASE_URI = api
    plivo.rest.client.API_VOICE_BASE_URI_FALLBACK_1 = api
    plivo.rest.client.API_VOICE_BASE_URI_FALLBACK_2 = api
    return client
