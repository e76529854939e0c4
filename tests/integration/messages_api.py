"""A local stand-in for Twilio's REST API, for tests (``SWITCHBOARD_TWILIO_API_BASE`` points here).

It plays the three APIs Switchboard's widgets call, answering like Twilio.
Every request needs Basic auth with the account sid and auth token (401/20003
otherwise); a repeated ``I-Twilio-Idempotency-Token`` gets the first successful
answer again and changes nothing, as Twilio dedupes it.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` (Send Message): form
fields ``To``, ``From`` or ``MessagingServiceSid``, ``Body``, ``MediaUrl``,
``ContentSid``; 201 with a Message resource in JSON (snake_case, ``status``
``queued``). Twilio's test numbers fail the same way: ``To=+15005550001`` is
400/21211 (invalid number), ``To=+15005550009`` is 400/21614 (not a mobile
number).

``POST …/Calls/{CallSid}/Recordings.json`` (Call Recording, start): optional
``RecordingStatusCallback``, ``RecordingStatusCallbackMethod`` (GET/POST),
``RecordingStatusCallbackEvent`` (repeatable: in-progress, completed, absent),
``RecordingChannels`` (mono/dual), ``Trim`` (trim-silence/do-not-trim); another value
is 400 ``Invalid parameter``; otherwise 201 with a Recording
resource (``status`` ``in-progress``, ``source`` ``StartCallRecordingAPI``).
``POST …/Calls/{CallSid}/Recordings/{Sid}.json`` with ``Status`` (stopped,
paused, in-progress) updates it (200); ``Sid`` may be ``Twilio.CURRENT``, the
call's recording in progress. No such recording is 404/20404. A CallSid given to
``end_call`` is a call that is over: starting a recording on it is 400/21220.

``POST …/Calls.json`` (Make Outgoing Call): ``To``, ``From`` and ``Url`` are
required (400/21201, 21213, 21205); ``Method``/``StatusCallbackMethod`` GET or
POST, ``Record`` true/false, ``RecordingChannels`` mono/dual, ``Trim``,
``MachineDetection`` Enable/DetectMessageEnd, ``Timeout`` a whole number of
seconds; another value is 400 ``Invalid parameter``. ``To=+15005550001`` is
400/21217 (not a valid phone number). Otherwise 201 with a Call resource
(``status`` ``queued``, ``direction`` ``outbound-api``). The stand-in only
records the call: a test plays the callee with ``devtools.simulator``
(``Simulator.answer(call["form"], script, call["sid"])`` after ``wait_for_call``),
as Twilio would place it.

``POST /v1/Interactions`` (Flex's Interactions API, Send to Flex for messages;
``SWITCHBOARD_FLEX_API_BASE`` points here too): ``Channel`` and ``Routing`` are
JSON objects; ``Channel.type`` and ``Channel.initiated_by`` are required, and
``Routing.properties`` needs a ``WS…`` ``workspace_sid`` (400/20001 otherwise).
The workflow ``UNKNOWN_WORKFLOW`` does not exist (404/20404). Otherwise 201 with
an Interaction resource (``sid`` ``KD…``, the ``channel`` and ``routing`` sent).

``POST /v1/Conversations/{ConversationSid}/Messages`` (Send Message in a
conversation; ``SWITCHBOARD_CONVERSATIONS_API_BASE`` points here): ``Body``
required (400/20001); 201 with a Message resource (``sid`` ``IM…``, ``author``
``system`` when none is given, ``index`` counting per conversation).

``POST /event-streams`` is an Event Streams webhook sink
(``SWITCHBOARD_EVENT_STREAM_SINKS`` points here): it keeps the JSON array of
events when ``X-Twilio-Signature`` validates (``bodySHA256`` in the URL), else
answers 403.

It runs on its own thread and event loop, so one instance serves a whole test
session (the cluster is configured with its URL before it starts) while each
test runs in its own loop. Reads are thread-safe snapshots.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import orjson
from aiohttp import web
from multidict import MultiDictProxy
from twilio.request_validator import RequestValidator

__all__ = ["CURRENT_RECORDING", "INVALID_NUMBER", "NOT_MOBILE", "UNKNOWN_WORKFLOW", "MessagesApi"]

CURRENT_RECORDING = "Twilio.CURRENT"
INVALID_PARAMETER = 20001  # what the stand-in answers a value Twilio would not accept with (400)
INVALID_NUMBER = "+15005550001"
NOT_MOBILE = "+15005550009"
UNKNOWN_WORKFLOW = "WW" + "0" * 32
_ERRORS = {
    INVALID_NUMBER: (21211, "The 'To' number {to} is not a valid phone number."),
    NOT_MOBILE: (21614, "'To' number {to} is not a valid mobile number"),
}


class MessagesApi:
    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.base = ""
        self._lock = threading.Lock()
        self._messages: list[dict[str, Any]] = []  # created Message resources, oldest first
        self._recordings: list[dict[str, Any]] = []  # created Recording resources (updated in place), oldest first
        self._calls: list[dict[str, Any]] = []  # created Call resources with the request's "form", oldest first
        self._interactions: list[dict[str, Any]] = []  # created Interaction resources, oldest first
        self._conversation_messages: list[dict[str, Any]] = []  # messages posted into conversations, oldest first
        self._stream_events: list[dict[str, Any]] = []  # Event Streams events a sink received, oldest first
        self._ended_calls: set[str] = set()
        self._attempts: list[dict[str, Any]] = []  # every POST: {"api", "path", "token", "form", "media"}
        self._by_token: dict[str, tuple[int, bytes]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> str:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="messages-api", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the Messages API stand-in did not start")
        return self.base

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        accounts = "/2010-04-01/Accounts/{account_sid}"
        app.router.add_post(f"{accounts}/Messages.json", self._api("messages", self._create))
        app.router.add_post(f"{accounts}/Calls/{{call_sid}}/Recordings.json",
                            self._api("recordings", self._start_recording))
        app.router.add_post(f"{accounts}/Calls/{{call_sid}}/Recordings/{{sid}}.json",
                            self._api("recordings", self._update_recording))
        app.router.add_post(f"{accounts}/Calls.json", self._api("calls", self._create_call))
        app.router.add_post("/event-streams", self._sink)
        app.router.add_post("/v1/Interactions", self._api("interactions", self._create_interaction))
        app.router.add_post("/v1/Conversations/{conversation_sid}/Messages",
                            self._api("conversations", self._create_conversation_message))
        self._runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- reading -------------------------------------------------------------------------------------

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        """Messages created (each once), optionally only those to ``to``."""
        with self._lock:
            return [dict(m) for m in self._messages if to is None or m["to"] == to]

    def attempts(self, to: str | None = None, api: str = "messages") -> list[dict[str, Any]]:
        """Every POST to ``api`` ("messages", "recordings" or "calls") received, repeats included."""
        with self._lock:
            return [dict(a) for a in self._attempts
                    if a["api"] == api and (to is None or a["form"].get("To") == to)]

    def recordings(self, call_sid: str | None = None) -> list[dict[str, Any]]:
        """Recordings started (each once), as they are now, optionally only those of ``call_sid``."""
        with self._lock:
            return [dict(r) for r in self._recordings if call_sid is None or r["call_sid"] == call_sid]

    def calls(self, to: str | None = None) -> list[dict[str, Any]]:
        """Calls created (each once), optionally only those to ``to``; ``form`` is the request's fields."""
        with self._lock:
            return [dict(c) for c in self._calls if to is None or c["to"] == to]

    async def wait_for_call(self, to: str, count: int = 1, timeout: float = 20.0) -> dict[str, Any]:
        """Poll (from any event loop) until ``count`` calls to ``to`` were created; return the newest."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.calls(to)
            if len(found) >= count:
                return found[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} call(s) to {to} within {timeout}s, got {found}")
            await asyncio.sleep(0.05)

    def conversation_messages(self, conversation_sid: str) -> list[dict[str, Any]]:
        """Messages posted into ``conversation_sid`` (each once), oldest first."""
        with self._lock:
            return [dict(m) for m in self._conversation_messages if m["conversation_sid"] == conversation_sid]

    async def wait_for_conversation(self, conversation_sid: str, count: int = 1,
                                    timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll until ``count`` messages were posted into ``conversation_sid``; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.conversation_messages(conversation_sid)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} message(s) in {conversation_sid} within {timeout}s: {found}")
            await asyncio.sleep(0.05)

    def stream_events(self, execution_sid: str) -> list[dict[str, Any]]:
        """Event Streams events the sink received for ``execution_sid``, in arrival order."""
        with self._lock:
            return [e for e in self._stream_events if e.get("data", {}).get("execution_sid") == execution_sid]

    def interactions(self) -> list[dict[str, Any]]:
        """Interactions created (each once), oldest first."""
        with self._lock:
            return [dict(i) for i in self._interactions]

    async def wait_for_interaction(self, media: str, timeout: float = 20.0) -> dict[str, Any]:
        """Poll until an interaction for the contact ``media`` (participant address or media channel) exists."""
        deadline = time.monotonic() + timeout
        while True:
            for found in self.interactions():
                channel = found["channel"]
                addresses = [p.get("address") for p in channel.get("participants", [])]
                if media in addresses or channel.get("properties", {}).get("media_channel_sid") == media:
                    return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no interaction for {media} within {timeout}s: {self.interactions()}")
            await asyncio.sleep(0.05)

    def end_call(self, call_sid: str) -> None:
        """From now on ``call_sid`` is a call that is over (no recording can start on it)."""
        with self._lock:
            self._ended_calls.add(call_sid)

    async def wait_for(self, to: str, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll (from any event loop) until ``count`` messages to ``to`` exist; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.messages(to)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} message(s) to {to} within {timeout}s, got {found}")
            await asyncio.sleep(0.05)

    # -- the API -------------------------------------------------------------------------------------

    def _error(self, status: int, code: int, message: str) -> web.Response:
        body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status}
        return web.json_response(body, status=status)

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.account_sid and password == self.auth_token

    def _api(self, api: str, write: Callable[[web.Request, MultiDictProxy[Any]], web.Response]) -> Any:
        """A handler: authentication, the attempt log and Twilio's idempotency token around one write."""

        async def handle(request: web.Request) -> web.Response:
            account = request.match_info.get("account_sid", self.account_sid)  # Flex's API names no account
            if not self._authorized(request) or account != self.account_sid:
                return self._error(401, 20003, "Authenticate")
            form = await request.post()
            token = request.headers.get("I-Twilio-Idempotency-Token", "")
            with self._lock:
                self._attempts.append({"api": api, "path": request.path, "token": token,
                                       "form": {k: str(v) for k, v in form.items()},
                                       "media": [str(v) for v in form.getall("MediaUrl", [])]})
                if token and token in self._by_token:
                    status, body = self._by_token[token]
                    return web.Response(status=status, body=body, content_type="application/json")
                response = write(request, form)
                if token and 200 <= response.status < 300 and isinstance(response.body, bytes):
                    self._by_token[token] = (response.status, response.body)
            return response

        return handle

    def _resource(self, status: int, resource: dict[str, Any]) -> web.Response:
        return web.Response(status=status, body=orjson.dumps(resource), content_type="application/json")

    # -- Messages ------------------------------------------------------------------------------------

    def _create(self, request: web.Request, form: MultiDictProxy[Any]) -> web.Response:
        fields = {k: str(v) for k, v in form.items()}
        media = [str(v) for v in form.getall("MediaUrl", [])]
        token = request.headers.get("I-Twilio-Idempotency-Token", "")
        to = fields.get("To", "")
        if not to:
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not (fields.get("From") or fields.get("MessagingServiceSid")):
            return self._error(400, 21603, "A 'From' phone number is required.")
        if not (fields.get("Body") or media or fields.get("ContentSid")):
            return self._error(400, 21602, "Message body is required.")
        if to in _ERRORS:
            code, text = _ERRORS[to]
            return self._error(400, code, text.format(to=to))
        sid = "SM" + secrets.token_hex(16)
        resource = {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "body": fields.get("Body", ""),
            "date_created": formatdate(usegmt=True), "date_sent": None, "date_updated": formatdate(usegmt=True),
            "direction": "outbound-api", "error_code": None, "error_message": None, "from": fields.get("From"),
            "messaging_service_sid": fields.get("MessagingServiceSid"), "num_media": str(len(media)),
            "num_segments": "1", "price": None, "price_unit": "USD", "sid": sid, "status": "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"},
            "to": to, "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        self._messages.append({**resource, "media_urls": media, "token": token})
        return self._resource(201, resource)

    # -- Call Recordings -----------------------------------------------------------------------------

    def _start_recording(self, request: web.Request, form: MultiDictProxy[Any]) -> web.Response:
        call_sid = request.match_info["call_sid"]
        if call_sid in self._ended_calls:
            return self._error(400, 21220, "Invalid call state: the call is not in progress")
        allowed = {"RecordingStatusCallbackMethod": ("GET", "POST"), "RecordingChannels": ("mono", "dual"),
                   "Trim": ("trim-silence", "do-not-trim")}
        for name, choices in allowed.items():
            if name in form and str(form[name]) not in choices:
                return self._error(400, INVALID_PARAMETER, f"Invalid parameter {name}: {form[name]}")
        events = [str(e) for e in form.getall("RecordingStatusCallbackEvent", [])] or ["completed"]
        if any(e not in ("in-progress", "completed", "absent") for e in events):
            return self._error(400, INVALID_PARAMETER, f"Invalid parameter RecordingStatusCallbackEvent: {events}")
        now = formatdate(usegmt=True)
        sid = "RE" + secrets.token_hex(16)
        resource = {
            "account_sid": self.account_sid, "api_version": "2010-04-01", "call_sid": call_sid,
            "conference_sid": None, "channels": 2 if form.get("RecordingChannels") == "dual" else 1,
            "date_created": now, "date_updated": now, "start_time": now, "duration": None, "sid": sid,
            "price": None, "price_unit": "USD", "status": "in-progress", "source": "StartCallRecordingAPI",
            "error_code": None, "encryption_details": None, "track": "both",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call_sid}/Recordings/{sid}.json",
        }
        self._recordings.append({**resource, "callback": str(form.get("RecordingStatusCallback", "")),
                                 "callback_events": events})
        return self._resource(201, resource)

    def _update_recording(self, request: web.Request, form: MultiDictProxy[Any]) -> web.Response:
        call_sid, sid = request.match_info["call_sid"], request.match_info["sid"]
        status = str(form.get("Status", ""))
        if status not in ("stopped", "paused", "in-progress"):
            return self._error(400, INVALID_PARAMETER, f"Invalid parameter Status: {status!r}")
        live = ("in-progress", "paused")
        found = next((r for r in reversed(self._recordings) if r["call_sid"] == call_sid and (
            r["sid"] == sid or (sid == CURRENT_RECORDING and r["status"] in live))), None)
        if found is None or found["status"] not in live:
            return self._error(404, 20404, f"The requested resource {request.path} was not found")
        found.update(status=status, date_updated=formatdate(usegmt=True))
        return self._resource(200, {k: v for k, v in found.items() if k not in ("callback", "callback_events")})

    # -- Calls ---------------------------------------------------------------------------------------

    def _create_call(self, request: web.Request, form: MultiDictProxy[Any]) -> web.Response:
        fields = {k: str(v) for k, v in form.items()}
        for name, code in (("To", 21201), ("From", 21213), ("Url", 21205)):
            if not fields.get(name):
                return self._error(400, code, f"No '{name}' parameter is specified")
        if fields["To"] == INVALID_NUMBER:
            return self._error(400, 21217, f"Phone number {fields['To']} is not a valid phone number")
        allowed = {"Method": ("GET", "POST"), "StatusCallbackMethod": ("GET", "POST"), "Record": ("true", "false"),
                   "RecordingChannels": ("mono", "dual"), "Trim": ("trim-silence", "do-not-trim"),
                   "MachineDetection": ("Enable", "DetectMessageEnd")}
        for name, choices in allowed.items():
            if name in fields and fields[name] not in choices:
                return self._error(400, INVALID_PARAMETER, f"Invalid parameter {name}: {fields[name]}")
        if not fields.get("Timeout", "60").isdigit():
            return self._error(400, INVALID_PARAMETER, f"Invalid parameter Timeout: {fields['Timeout']}")
        now = formatdate(usegmt=True)
        sid = "CA" + secrets.token_hex(16)
        resource = {
            "account_sid": self.account_sid, "annotation": None, "answered_by": None, "api_version": "2010-04-01",
            "caller_name": None, "date_created": now, "date_updated": now, "direction": "outbound-api",
            "duration": None, "end_time": None, "forwarded_from": None, "from": fields["From"],
            "from_formatted": fields["From"], "group_sid": None, "parent_call_sid": None, "phone_number_sid": None,
            "price": None, "price_unit": "USD", "sid": sid, "start_time": None, "status": "queued",
            "subresource_uris": {"recordings": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}/Recordings.json"},
            "to": fields["To"], "to_formatted": fields["To"], "trunk_sid": None,
            "uri": f"/2010-04-01/Accounts/{self.account_sid}/Calls/{sid}.json", "queue_time": "0",
        }
        self._calls.append({**resource, "form": fields})
        return self._resource(201, resource)

    # -- Flex Interactions ---------------------------------------------------------------------------

    def _create_interaction(self, request: web.Request, form: MultiDictProxy[Any]) -> web.Response:
        try:
            channel, routing = (orjson.loads(str(form.get(name, ""))) for name in ("Channel", "Routing"))
        except orjson.JSONDecodeError as exc:
            return self._error(400, INVALID_PARAMETER, f"Channel and Routing must be JSON: {exc}")
        if not isinstance(channel, dict) or not channel.get("type") or not channel.get("initiated_by"):
            return self._error(400, INVALID_PARAMETER, "Channel needs a type and initiated_by")
        properties = routing.get("properties") if isinstance(routing, dict) else None
        if not isinstance(properties, dict) or not str(properties.get("workspace_sid", "")).startswith("WS"):
            return self._error(400, INVALID_PARAMETER, "Routing.properties.workspace_sid is required")
        if properties.get("workflow_sid") == UNKNOWN_WORKFLOW:
            return self._error(404, 20404, f"The requested resource /Workflows/{UNKNOWN_WORKFLOW} was not found")
        sid = "KD" + secrets.token_hex(16)
        resource = {"sid": sid, "channel": {**channel, "sid": "UO" + secrets.token_hex(16)}, "routing": routing,
                    "url": f"https://flex-api.twilio.com/v1/Interactions/{sid}",
                    "links": {"channels": f"https://flex-api.twilio.com/v1/Interactions/{sid}/Channels"}}
        self._interactions.append(resource)
        return self._resource(201, resource)

    # -- Conversations -------------------------------------------------------------------------------

    def _create_conversation_message(self, request: web.Request, form: MultiDictProxy[Any]) -> web.Response:
        conversation = request.match_info["conversation_sid"]
        if not str(form.get("Body", "")):
            return self._error(400, INVALID_PARAMETER, "Body or MediaSid is required")
        now = formatdate(usegmt=True)
        index = len([m for m in self._conversation_messages if m["conversation_sid"] == conversation])
        sid = "IM" + secrets.token_hex(16)
        resource = {"sid": sid, "account_sid": self.account_sid, "conversation_sid": conversation,
                    "chat_service_sid": "IS" + "0" * 32, "body": str(form["Body"]),
                    "author": str(form.get("Author", "system")), "attributes": str(form.get("Attributes", "{}")),
                    "index": index, "participant_sid": None, "media": None, "date_created": now, "date_updated": now,
                    "url": f"https://conversations.twilio.com/v1/Conversations/{conversation}/Messages/{sid}"}
        self._conversation_messages.append(resource)
        return self._resource(201, resource)

    # -- Event Streams sink ---------------------------------------------------------------------------

    async def _sink(self, request: web.Request) -> web.Response:
        body = await request.read()
        url = f"{self.base}{request.raw_path}"
        validator = RequestValidator(self.auth_token)
        if not validator.validate(url, body.decode(), request.headers.get("X-Twilio-Signature", "")):
            return web.Response(status=403, text="bad signature")
        with self._lock:
            self._stream_events.extend(orjson.loads(body))
        return web.Response(status=204)
