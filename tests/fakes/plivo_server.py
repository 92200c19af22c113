"""A protocol-accurate fake of Plivo's REST API (calls, applications, numbers) on 127.0.0.1.

    fake = FakePlivo().start_in_thread()
    settings.PLIVO_API_BASE_URL = fake.url        # the real `plivo` SDK talks to it
    account.plivo_auth_id, account.plivo_auth_token = fake.auth_id, fake.auth_token
    fake.fail_next(503, times=2)                    # scripted failures: any status, or a stall (timeout)
    ... fake.calls[0].params["answer_url"], fake.requests ...
    fake.stop()

Paths, methods, status codes and bodies are the ones the SDK (4.63.0) sends and parses: every path ends in
a slash, bodies are JSON, auth is HTTP Basic with the account's auth id and token, a wrong pair is a 401.

With `plan` set (a CallPlan, or a function of the FakeCall returning one), the fake also plays Plivo's part
of every call it fires: it POSTs signed ring, answer, machine-detection and hangup callbacks (V3 signatures
made with the auth token) to the URLs it was given, follows the answer XML (Stream, Speak, Hangup) and
honours hang-ups and transfers made through the API meanwhile. A transfer's XML is fetched and followed: a Dial
with `confirmSound` (a warm transfer) has that URL fetched too, as Plivo does when the person dialled answers, and
the XML it returned (what they heard before being joined) kept in `call.announcements`.
"""
from __future__ import annotations

import base64
import itertools
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree

import requests

from voicebots.providers.plivo_api import sign_like_plivo

DEFAULT_AUTH_ID = "MAFAKEPLIVOACCOUNT01"
LIVE = ("queued", "ringing", "in-progress")
HANGUP_CAUSES = {  # CallStatus -> (HangupCauseName, HangupCauseCode) as Plivo reports them
    "completed": ("Normal Hangup", 4000), "busy": ("Busy Line", 3010), "no-answer": ("No Answer", 3000),
    "failed": ("Unallocated Number", 2000), "cancel": ("Cancelled", 4010),
}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict
    body: dict
    authorized: bool
    at: float  # time.monotonic() when it arrived


@dataclass
class Failure:
    status: int | None  # answer with this status...
    stall_s: float  # ...or, when status is None, sleep this long before answering normally (a timeout)
    times: int
    path: str | None
    method: str | None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or self.path in path)


@dataclass
class CallPlan:
    """What happens to a fired call: who answers and for how long."""

    outcome: str = "human"  # human | machine | busy | no-answer | failed
    ring_s: float = 0.0
    talk_s: float = 0.0  # how long the callee stays on once the bot's stream runs
    detect_s: float = 0.0  # how long machine detection takes after the answer
    transfer_status: str = "completed"  # how a transfer's Dial ends: completed | no-answer | busy | failed


@dataclass
class FakeCall:
    request_uuid: str
    call_uuid: str
    params: dict  # the JSON body of the create request
    status: str = "queued"
    answered_at: float | None = None
    created_at: float = field(default_factory=time.monotonic)
    answer_xml: str = ""
    transfers: list = field(default_factory=list)  # (url, xml fetched)
    transferring: list = field(default_factory=list)  # threads fetching a transfer's XML
    announcements: list = field(default_factory=list)  # XML of a warm transfer's confirmSound, as fetched
    dial_results: list = field(default_factory=list)  # XML our app answered to a transfer Dial's action URL
    callbacks: list = field(default_factory=list)  # (kind, our app's status code, sent at, answered at)
    ended: threading.Event = field(default_factory=threading.Event)
    end_status: str = ""
    hangup_source: str = ""

    @property
    def live(self) -> bool:
        return not self.ended.is_set()

    def end(self, status: str, source: str) -> bool:
        if self.ended.is_set():
            return False
        self.end_status, self.hangup_source = status, source
        self.ended.set()
        return True


class FakePlivo:
    def __init__(self, auth_id: str = DEFAULT_AUTH_ID, auth_token: str | None = None,
                 plan: CallPlan | None = None) -> None:
        self.auth_id = auth_id
        self.auth_token = auth_token or secrets.token_urlsafe(24)
        self.plan = plan  # None: calls are only recorded; tests deliver the callbacks themselves
        self.requests: list[Recorded] = []
        self.calls: list[FakeCall] = []
        self.numbers: dict[str, dict] = {}
        self.applications: dict[str, dict] = {}
        self.callback_errors: list[str] = []
        self._failures: list[Failure] = []
        self._lock = threading.Lock()
        self._app_ids = itertools.count(20468599130939380)
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # --- Script -----------------------------------------------------------------------------------

    def fail_next(self, status: int, *, times: int = 1, path: str | None = None, method: str | None = None) -> None:
        with self._lock:
            self._failures.append(Failure(status, 0.0, times, path, method))

    def stall_next(self, seconds: float, *, times: int = 1, path: str | None = None,
                   method: str | None = None) -> None:
        with self._lock:
            self._failures.append(Failure(None, seconds, times, path, method))

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()

    def add_number(self, number: str, *, app_id: str | None = None, alias: str | None = None,
                   voice_enabled: bool = True) -> dict:
        number = number.lstrip("+")
        self.numbers[number] = {
            "added_on": "2024-05-01", "alias": alias, "application": self._app_uri(app_id) if app_id else None,
            "carrier": "Plivo", "monthly_rental_rate": "0.50000", "number": number, "number_type": "local",
            "region": "California, UNITED STATES", "country": "United States", "city": "SAN FRANCISCO",
            "resource_uri": f"/v1/Account/{self.auth_id}/Number/{number}/", "sms_enabled": True,
            "sms_rate": "0.00000", "mms_enabled": False, "sub_account": None, "voice_enabled": voice_enabled,
            "voice_rate": "0.00850", "active": True, "renewal_date": "2024-06-01", "cnam_lookup": "disabled",
            "compliance_application_id": None, "compliance_status": None,
        }
        return self.numbers[number]

    def add_application(self, name: str, answer_url: str = "https://example.com/answer") -> str:
        app_id = str(next(self._app_ids))
        self.applications[app_id] = self._application(app_id, {"app_name": name, "answer_url": answer_url})
        return app_id

    def number_app_id(self, number: str) -> str | None:
        uri = self.numbers[number.lstrip("+")]["application"]
        return uri.rstrip("/").rsplit("/", 1)[-1] if uri else None

    def requests_to(self, method: str, path_part: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.method == method and path_part in r.path]

    def live_calls(self) -> list[FakeCall]:
        with self._lock:
            return [call for call in self.calls if call.live]

    def call_by_request(self, request_uuid: str) -> FakeCall | None:
        with self._lock:
            return next((call for call in self.calls if call.request_uuid == request_uuid), None)

    # --- Server -----------------------------------------------------------------------------------

    def start_in_thread(self) -> "FakePlivo":
        fake = self

        class Handler(_Handler):
            plivo = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-plivo",
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for call in self.calls:
            call.end(call.end_status or "completed", "shutdown")

    def _next_failure(self, method: str, path: str) -> Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.matches(method, path):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure
        return None

    # --- Resources (each returns (status, body or None)) ------------------------------------------

    def account_details(self) -> dict:
        """GET /v1/Account/{auth_id}/, as Plivo answers it."""
        return {"account_type": "standard", "address": "", "api_id": _api_id(), "auth_id": self.auth_id,
                "auto_recharge": False, "billing_mode": "prepaid", "cash_credits": "10.00000", "city": "",
                "name": "Fake Plivo account", "resource_uri": f"/v1/Account/{self.auth_id}/", "state": "",
                "timezone": "Asia/Kolkata"}

    def handle(self, method: str, parts: list[str], query: dict, body: dict) -> tuple[int, dict | None]:
        resource, rest = parts[0], parts[1:]
        routes = {"Call": self._call_route, "Request": self._request_route, "Application": self._application_route,
                  "Number": self._number_route}
        if resource not in routes:
            return 404, _error("Resource not found")
        return routes[resource](method, rest, query, body)

    def _call_route(self, method, rest, query, body):
        if not rest and method == "POST":
            return self._create_call(body)
        if len(rest) == 1:
            call = self._find_call(rest[0])
            if call is None or not call.live:
                return 404, _error("Call not found")
            if method == "DELETE":
                self._hang_up(call, "API")
                return 204, None
            if method == "POST":
                if body.get("legs") not in ("aleg", "bleg", "both"):
                    return 400, _error("legs must be aleg, bleg or both")
                url = body.get("aleg_url")
                call.transfers.append((url, ""))
                if url and self.plan is not None:  # only a fake that plays calls fetches the new XML
                    worker = threading.Thread(target=self._follow_transfer, args=(call, url), daemon=True)
                    call.transferring.append(worker)
                    worker.start()
                return 202, {"api_id": _api_id(), "message": "call transferred"}
            if method == "GET":
                return 200, {"api_id": _api_id(), "call_uuid": call.call_uuid, "call_status": call.status}
        return 405, _error("Method not allowed")

    def _create_call(self, body):
        missing = [name for name in ("from", "to", "answer_url") if not body.get(name)]
        if missing:
            return 400, _error(f"{', '.join(missing)} is required")
        call = FakeCall(request_uuid=str(uuid.uuid4()), call_uuid=str(uuid.uuid4()), params=body)
        with self._lock:
            self.calls.append(call)
        if self.plan is not None:
            threading.Thread(target=self._play, args=(call,), name=f"fake-call-{call.request_uuid[:8]}",
                             daemon=True).start()
        return 201, {"api_id": _api_id(), "message": "call fired", "request_uuid": call.request_uuid}

    def _request_route(self, method, rest, query, body):
        call = self.call_by_request(rest[0]) if len(rest) == 1 else None
        if method != "DELETE" or call is None or not call.live or call.status == "in-progress":
            return 404, _error("Request not found")
        self._hang_up(call, "API")
        return 204, None

    def _find_call(self, call_uuid: str) -> FakeCall | None:
        with self._lock:
            return next((call for call in self.calls if call.call_uuid == call_uuid), None)

    def _application_route(self, method, rest, query, body):
        if not rest:
            if method == "POST":
                if not body.get("app_name"):
                    return 400, _error("app_name is required")
                app_id = str(next(self._app_ids))
                self.applications[app_id] = self._application(app_id, body)
                return 201, {"api_id": _api_id(), "app_id": app_id, "message": "created"}
            if method == "GET":
                apps = [a for a in self.applications.values()
                        if not query.get("app_name") or a["app_name"] == query["app_name"]]
                return 200, self._page(apps, query, "Application")
            return 405, _error("Method not allowed")
        app = self.applications.get(rest[0])
        if app is None:
            return 404, _error("Application not found")
        if method == "GET":
            return 200, {"api_id": _api_id(), **app}
        if method == "POST":
            app.update({key: value for key, value in body.items() if key in app})
            return 202, {"api_id": _api_id(), "message": "changed"}
        if method == "DELETE":
            del self.applications[rest[0]]
            return 204, None
        return 405, _error("Method not allowed")

    def _number_route(self, method, rest, query, body):
        if not rest:
            if method == "GET":
                return 200, self._page(list(self.numbers.values()), query, "Number")
            return 405, _error("Method not allowed")
        number = self.numbers.get(rest[0])
        if number is None:
            return 404, _error("Number not found")
        if method == "GET":
            return 200, {"api_id": _api_id(), **number}
        if method == "POST":
            app_id = body.get("app_id")
            if app_id and app_id not in self.applications:
                return 404, _error("Application not found")
            # Without app_id Plivo links the number to the account's default application (none here).
            number["application"] = self._app_uri(app_id) if app_id else None
            if "alias" in body:
                number["alias"] = body["alias"]
            return 202, {"api_id": _api_id(), "message": "changed"}
        return 405, _error("Method not allowed")

    def _application(self, app_id: str, body: dict) -> dict:
        return {
            "app_id": app_id, "app_name": body["app_name"], "answer_url": body.get("answer_url", ""),
            "answer_method": body.get("answer_method", "POST"), "hangup_url": body.get("hangup_url", ""),
            "hangup_method": body.get("hangup_method", "POST"), "fallback_answer_url": "",
            "fallback_method": "POST", "message_url": "", "message_method": "POST", "default_app": False,
            "default_endpoint_app": False, "enabled": True, "public_uri": False, "sub_account": None,
            "resource_uri": self._app_uri(app_id), "sip_uri": f"sip:{app_id}@app.plivo.com",
        }

    def _app_uri(self, app_id: str) -> str:
        return f"/v1/Account/{self.auth_id}/Application/{app_id}/"

    def _page(self, objects: list, query: dict, resource: str) -> dict:
        limit, offset = int(query.get("limit", 20)), int(query.get("offset", 0))
        base = f"/v1/Account/{self.auth_id}/{resource}/"
        more = offset + limit < len(objects)
        return {
            "api_id": _api_id(),
            "meta": {"limit": limit, "offset": offset, "total_count": len(objects),
                     "next": f"{base}?limit={limit}&offset={offset + limit}" if more else None,
                     "previous": f"{base}?limit={limit}&offset={max(offset - limit, 0)}" if offset else None},
            "objects": objects[offset:offset + limit],
        }

    # --- Plivo's side of a call -----------------------------------------------------------------------

    def _play(self, call: FakeCall) -> None:
        plan = self.plan(call) if callable(self.plan) else self.plan
        body = call.params
        machine = plan.outcome == "machine"
        call.status = "ringing"
        self._callback(call, "ring", body.get("ring_url"), {"CallStatus": "ringing", "Event": "Ring"})
        if call.ended.wait(plan.ring_s):
            return self._finish(call)
        if plan.outcome in ("busy", "no-answer", "failed"):
            call.end(plan.outcome, "Callee" if plan.outcome == "busy" else "Plivo")
            return self._finish(call)
        call.status, call.answered_at = "in-progress", time.monotonic()
        detection = body.get("machine_detection")
        answer = {"CallStatus": "in-progress", "Event": "StartApp"}
        if detection and not body.get("machine_detection_url"):  # synchronous detection: told on the answer
            answer["Machine"] = "true" if machine else "false"
            if machine and detection == "hangup":
                call.end("completed", "Plivo")
                return self._finish(call, Machine="true")
        call.answer_xml = self._callback(call, "answer", body.get("answer_url"), answer)
        self._follow(call, call.answer_xml)
        if machine and detection and body.get("machine_detection_url") and not call.ended.wait(plan.detect_s):
            self._callback(call, "machine", body["machine_detection_url"], {
                "CallStatus": "in-progress", "Event": "MachineDetection", "Machine": "true",
                "IfMachine": "hangup" if detection == "hangup" else "continue"})
            if detection == "hangup":
                call.end("completed", "Plivo")
        for worker in list(call.transferring):  # a transfer asked for meanwhile runs before the call moves on
            worker.join(timeout=30)
        call.ended.wait(plan.talk_s if "<Stream" in call.answer_xml else 0)
        call.end("completed", "Callee")
        self._finish(call, **({"Machine": "true"} if machine and detection else {}))

    def _follow(self, call: FakeCall, xml: str) -> None:
        """Run the XML's verbs that end a call (Hangup); Stream keeps it up, Speak and Wait take no time here."""
        try:
            verbs = [element.tag for element in ElementTree.fromstring(xml or "<Response/>")]
        except ElementTree.ParseError:
            verbs = ["Hangup"]  # Plivo hangs up on an answer it cannot parse
        if "Stream" not in verbs and ("Hangup" in verbs or not verbs):
            call.end("completed", "Plivo")

    def _follow_transfer(self, call: FakeCall, url: str) -> None:
        xml = self._callback(call, "transfer", url, {"CallStatus": "in-progress", "Event": "Redirect"})
        call.transfers[-1] = (url, xml)
        self._follow(call, xml)
        try:
            dial = ElementTree.fromstring(xml).find("Dial") if xml else None
        except ElementTree.ParseError:
            dial = None
        if dial is None:
            return
        status = self.plan.transfer_status if self.plan else "completed"
        if dial.get("confirmSound") and status == "completed":  # the person dialled answered: they hear it first
            call.announcements.append(self._callback(call, "confirm_sound", dial.get("confirmSound"), {
                "CallStatus": "in-progress", "Event": "DialAnswer", "DialBLegStatus": "answer"}))
        if dial.get("action"):  # the Dial is over: Plivo asks what the caller gets next
            xml = self._callback(call, "dial_action", dial.get("action"), {
                "CallStatus": "in-progress", "DialStatus": status, "DialALegUUID": call.call_uuid,
                "DialBLegUUID": str(uuid.uuid4()) if status == "completed" else ""})
            call.dial_results.append(xml)
            self._follow(call, xml)

    def _hang_up(self, call: FakeCall, source: str) -> None:
        status = "completed" if call.status == "in-progress" else "cancel"
        if call.end(status, source) and self.plan is None:
            call.status = status

    def _finish(self, call: FakeCall, **extra) -> None:
        status = call.end_status or "completed"
        name, code = HANGUP_CAUSES.get(status, HANGUP_CAUSES["completed"])
        duration = int(time.monotonic() - call.answered_at) if call.answered_at else 0
        call.status = status
        self._callback(call, "hangup", call.params.get("hangup_url"), {
            "CallStatus": status, "Event": "Hangup", "HangupCause": name.upper().replace(" ", "_"),
            "HangupCauseName": name, "HangupCauseCode": str(code), "HangupSource": call.hangup_source or "Callee",
            "Duration": str(duration), "BillDuration": str(duration), "BillRate": "0.00850", **extra})

    def callback_params(self, call: FakeCall, **extra) -> dict:
        """The parameters Plivo sends with every callback of an outbound API call."""
        return {"CallUUID": call.call_uuid, "RequestUUID": call.request_uuid, "ALegUUID": call.call_uuid,
                "ALegRequestUUID": call.request_uuid, "From": call.params.get("from", ""),
                "To": call.params.get("to", ""), "Direction": "outbound", **extra}

    def signature_headers(self, url: str, params: dict) -> dict:
        """The V3 signature headers Plivo sends with a POST of `params` to `url`."""
        nonce = secrets.token_hex(10)
        signature = sign_like_plivo(url=url, params={k: [v] for k, v in params.items()}, auth_token=self.auth_token,
                                    nonce=nonce)
        return {"X-Plivo-Signature-V3": signature, "X-Plivo-Signature-V3-Nonce": nonce}

    def _callback(self, call: FakeCall, kind: str, url: str | None, extra: dict) -> str:
        if not url:
            return ""
        params = self.callback_params(call, **extra)
        sent_at = time.monotonic()
        try:
            response = requests.post(url, data=params, timeout=30, headers=self.signature_headers(url, params))
        except requests.RequestException as error:
            self.callback_errors.append(f"{kind} {url}: {error}")
            return ""
        call.callbacks.append((kind, response.status_code, sent_at, time.monotonic()))
        if response.status_code >= 400:
            self.callback_errors.append(f"{kind} {url}: {response.status_code} {response.text[:200]}")
        return response.text


class _Handler(BaseHTTPRequestHandler):
    plivo: FakePlivo
    protocol_version = "HTTP/1.1"  # keep-alive, as Plivo's API speaks it

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_DELETE(self):
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        fake = self.plivo
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self._reply(400, _error("The request body is not JSON"))
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        parts = [part for part in url.path.split("/") if part]
        authorized = self._authorized(parts)
        with fake._lock:
            fake.requests.append(Recorded(method, url.path, query, body, authorized, time.monotonic()))
        if not authorized:
            return self._reply(401, _error("Authentication failed"))
        failure = fake._next_failure(method, url.path)
        if failure is not None and failure.status is not None:
            return self._reply(failure.status, _error("Internal server error") if failure.status >= 500
                               else _error(f"Scripted {failure.status}"))
        if failure is not None:
            time.sleep(failure.stall_s)
        if len(parts) == 3 and parts[:2] == ["v1", "Account"] and url.path.endswith("/") and method == "GET":
            return self._reply(200, fake.account_details())
        if len(parts) < 4 or parts[:2] != ["v1", "Account"] or not url.path.endswith("/"):
            return self._reply(404, _error("Resource not found"))
        status, payload = fake.handle(method, parts[3:], query, body)
        self._reply(status, payload)

    def _authorized(self, parts: list[str]) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        path_account = parts[2] if len(parts) > 2 else ""
        fake = self.plivo
        return user == fake.auth_id and password == fake.auth_token and path_account == fake.auth_id

    def _reply(self, status: int, payload: dict | None) -> None:
        data = json.dumps(payload).encode() if payload is not None else b""
        try:
            self.send_response(status)
            if payload is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass


def _api_id() -> str:
    return str(uuid.uuid4())


def _error(message: str) -> dict:
    return {"api_id": _api_id(), "error": message}
