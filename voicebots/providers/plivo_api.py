"""Plivo through its SDK: webhook signatures (V3), answer XML, and the REST client."""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence

import plivo
import requests
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


def hangup_xml() -> str:
    return plivoxml.ResponseElement().add(plivoxml.HangupElement()).to_string(pretty=False)


def voicemail_xml(message: str, beep_wait_s: int = 20) -> str:
    """Wait for the answering machine's beep (at most `beep_wait_s`), speak the message, hang up."""
    response = plivoxml.ResponseElement()
    response.add(plivoxml.WaitElement(length=beep_wait_s, beep=True))
    response.add(plivoxml.SpeakElement(message))
    response.add(plivoxml.HangupElement())
    return response.to_string(pretty=False)


def rest_client(auth_id: str, auth_token: str, base_url: str, timeout: float = 10) -> plivo.RestClient:
    """A REST client aimed at `base_url` (Plivo's, a regional endpoint, or a local fake)."""
    client = plivo.RestClient(auth_id=auth_id, auth_token=auth_token, timeout=timeout)
    _aim(client, base_url)
    return client


def _aim(client: plivo.RestClient, base_url: str) -> None:
    api = f"{base_url.rstrip('/')}/v1/Account"
    client.base_uri = api
    # The SDK resets base_uri per request from these module constants, so point them there too.
    plivo.rest.client.PLIVO_API_BASE_URI = api
    plivo.rest.client.API_VOICE_BASE_URI = api
    plivo.rest.client.API_VOICE_BASE_URI_FALLBACK_1 = api
    plivo.rest.client.API_VOICE_BASE_URI_FALLBACK_2 = api


# --- The REST operations the product uses -------------------------------------------------------

RETRY_ATTEMPTS = 3  # tries of one operation when Plivo is unavailable (5xx, timeout, unreachable)
RETRY_BACKOFF_S = 0.5  # wait before the second try; doubled before each later one


class PlivoApiError(Exception):
    """A Plivo REST request that failed, sorted by what the caller can do about it."""

    UNAVAILABLE = "unavailable"  # 5xx, timeout, connection refused: worth retrying later
    AUTH = "auth"  # Plivo refused the credentials
    NOT_FOUND = "not_found"
    REJECTED = "rejected"  # Plivo (or the SDK before sending) refused the request itself

    def __init__(self, kind: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status

    @property
    def retryable(self) -> bool:
        return self.kind == self.UNAVAILABLE


def plivo_number(e164: str) -> str:
    """Plivo writes numbers as digits with the country code and no '+'."""
    return e164.strip().lstrip("+")


def _plain(value):
    """SDK response objects -> plain dicts and lists (without the SDK's client reference)."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if hasattr(value, "__dict__") and not isinstance(value, type):
        return {key: _plain(item) for key, item in vars(value).items() if key != "client" and not key.startswith("_")}
    return value


class PlivoApi:
    """Calls, applications and numbers of one Plivo account, with errors as PlivoApiError.

    Transient failures are retried here with backoff. The SDK's own retry of voice requests (two
    immediate repeats to fallback hosts, which are the same host here) is switched off so that this
    is the only retry policy.
    """

    def __init__(self, auth_id: str, auth_token: str, base_url: str, timeout: float = 10) -> None:
        self.timeout, self.base_url = timeout, base_url
        try:
            self._client = rest_client(auth_id, auth_token, base_url, timeout)
        except plivo.exceptions.AuthenticationError as error:
            raise PlivoApiError(PlivoApiError.AUTH, f"The Plivo credentials are unusable: {error}") from error
        self._last_status: int | None = None
        self._client.session.hooks["response"].append(self._remember_status)

    def _remember_status(self, response, *args, **kwargs):
        self._last_status = response.status_code

    def _request(self, operation, *args, **kwargs):
        delay = RETRY_BACKOFF_S
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                return self._once(operation, *args, **kwargs)
            except PlivoApiError as error:
                if not error.retryable or attempt == RETRY_ATTEMPTS:
                    raise
                logger.info("Plivo unavailable (%s); retrying in %.1f s", error.message, delay)
                time.sleep(delay)
                delay *= 2

    def _once(self, operation, *args, **kwargs):
        self._last_status = None
        _aim(self._client, self.base_url)  # another client may have re-aimed the SDK's module-wide base URL
        self._client.voice_retry_count = 2  # the SDK's fallback counter: at 2 it raises instead of repeating
        try:
            return operation(*args, **kwargs)
        except requests.Timeout as error:
            raise PlivoApiError(PlivoApiError.UNAVAILABLE,
                                f"Plivo did not answer within {self.timeout:g} s.") from error
        except requests.ConnectionError as error:
            raise PlivoApiError(PlivoApiError.UNAVAILABLE, f"Plivo could not be reached ({error}).") from error
        except plivo.exceptions.PlivoRestError as error:
            raise self._translate(str(error)) from error
        except (AttributeError, KeyError, TypeError, ValueError) as error:
            # The SDK trips over some error bodies (e.g. a 401 on a list); the status still says what happened.
            if self._last_status is None or self._last_status < 400:
                raise PlivoApiError(PlivoApiError.REJECTED, f"Unexpected answer from Plivo: {error!r}") from error
            raise self._translate("") from error

    def _translate(self, detail: str) -> PlivoApiError:
        status = self._last_status
        said = f": {detail}" if detail else ""
        if status is None:  # refused by the SDK's own validation: nothing was sent
            return PlivoApiError(PlivoApiError.REJECTED, f"Invalid Plivo request{said}")
        if status >= 500:
            return PlivoApiError(PlivoApiError.UNAVAILABLE, f"Plivo answered {status}{said}", status)
        if status in (401, 403):
            return PlivoApiError(PlivoApiError.AUTH, f"Plivo refused the credentials ({status}){said}", status)
        if status == 404:
            return PlivoApiError(PlivoApiError.NOT_FOUND, f"Plivo has no such resource (404){said}", status)
        return PlivoApiError(PlivoApiError.REJECTED, f"Plivo refused the request ({status}){said}", status)

    # The account

    def get_account(self) -> dict:
        """The account's details: a cheap authenticated request that tells whether the credentials work."""
        return _plain(self._request(self._client.account.get))

    # Calls

    def create_call(self, *, from_number: str, to_number: str, answer_url: str, hangup_url: str, ring_url: str,
                    ring_timeout: int, time_limit: int | None = None, machine_detection: str | None = None,
                    machine_detection_url: str | None = None) -> str:
        """Place a call; returns Plivo's request_uuid (the CallUUID arrives with the callbacks)."""
        options = {"machine_detection": machine_detection, "machine_detection_url": machine_detection_url} \
            if machine_detection else {}
        response = self._request(
            self._client.calls.create, from_=plivo_number(from_number), to_=plivo_number(to_number),
            answer_url=answer_url, answer_method="POST", hangup_url=hangup_url, hangup_method="POST",
            ring_url=ring_url, ring_method="POST", ring_timeout=ring_timeout, time_limit=time_limit, **options,
        )
        return response.request_uuid

    def hang_up(self, call_uuid: str) -> bool:
        """End a live call; False when Plivo no longer knows it (it is over already)."""
        try:
            self._request(self._client.calls.delete, call_uuid)
        except PlivoApiError as error:
            if error.kind == PlivoApiError.NOT_FOUND:
                return False
            raise
        return True

    def cancel_request(self, request_uuid: str) -> bool:
        """Cancel a call that has not been answered yet, by its request_uuid; False when it is gone."""
        try:
            self._request(self._client.calls.cancel, request_uuid)
        except PlivoApiError as error:
            if error.kind == PlivoApiError.NOT_FOUND:
                return False
            raise
        return True

    def transfer(self, call_uuid: str, url: str) -> None:
        """Make a live call fetch its next XML from `url`."""
        self._request(self._client.calls.update, call_uuid, legs="aleg", aleg_url=url, aleg_method="POST")

    # Applications

    def create_application(self, *, name: str, answer_url: str, hangup_url: str) -> str:
        response = self._request(self._client.applications.create, app_name=name, answer_url=answer_url,
                                 answer_method="POST", hangup_url=hangup_url, hangup_method="POST")
        return str(response.app_id)

    def update_application(self, app_id: str, *, answer_url: str, hangup_url: str) -> None:
        self._request(self._client.applications.update, app_id, answer_url=answer_url, answer_method="POST",
                      hangup_url=hangup_url, hangup_method="POST")

    def get_application(self, app_id: str) -> dict:
        return _plain(self._request(self._client.applications.get, app_id))

    # Numbers

    def list_numbers(self, *, offset: int, limit: int) -> tuple[list[dict], int]:
        """One page of the account's numbers and their total count (the SDK pages by at most 20)."""
        numbers, total = [], 0
        while len(numbers) < limit:
            page_size = min(20, limit - len(numbers))
            page = self._request(self._client.numbers.list, offset=offset + len(numbers), limit=page_size)
            objects = _plain(page.objects)
            total = int(getattr(page.meta, "total_count", 0) or 0)
            numbers.extend(objects)
            if len(objects) < page_size or offset + len(numbers) >= total:
                break
        return numbers, total

    def get_number(self, number: str) -> dict:
        return _plain(self._request(self._client.numbers.get, plivo_number(number)))

    def link_number(self, number: str, app_id: str | None) -> None:
        """Point a number at an application; None gives it back to the account's default application."""
        self._request(self._client.numbers.update, plivo_number(number), app_id=app_id)
