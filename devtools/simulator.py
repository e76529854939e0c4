"""A Twilio simulator: plays Twilio's side of calls and messages against a flow webhook on this machine.

It does what Twilio Voice and Messaging do with a Studio flow's webhook, so a
flow can be tried end to end without a phone:

* **a call** — POSTs the signed incoming-call webhook (``CallStatus=ringing``),
  then follows the TwiML it gets back verb by verb: ``<Say>``, ``<Play>`` and
  ``<Pause>`` are recorded; ``<Gather>`` is answered from the script (digits,
  ``speech:<words>``, or ``""`` for no input, in which case Twilio goes on to
  the next verb); ``<Redirect>`` is followed to its URL (any URL — e.g. a TwiML
  app that later redirects back with ``?FlowEvent=return&foo=bar``);
  ``<Dial>``, ``<Record>`` and ``<Enqueue>`` post their ``action`` with scripted
  results (``DialCallStatus``…, ``RecordingUrl``…, ``QueueResult``: by default
  the caller hangs up in the queue; ``<Enqueue workflowSid>`` with its
  ``<Task>`` alike); ``<Pay>`` posts its action with the scripted ``Result``
  and the payment fields Twilio sends (a masked card number among them);
  ``<Connect><VirtualAgent>`` posts its action with the scripted
  ``VirtualAgentStatus`` and provider data; ``<Start>``/``<Stop>`` of a
  ``<Stream>`` or ``<Siprec>`` are recorded and Twilio goes straight on with the
  next verb; ``<Hangup>``/``<Reject>`` or the
  end of a document end the call, and a final status callback
  (``CallStatus=completed``) is POSTed to the flow webhook, as Twilio does when
  the number's "call status changes" URL is the flow.
* **a message** — POSTs the signed incoming-message webhook and records the
  ``<Message>`` replies, following ``<Redirect>``.
* **a conversation message** (``Simulator.conversation``) — POSTs the signed
  Conversations ``onMessageAdded`` webhook a conversation sends to a flow
  (``ConversationSid``, ``MessageSid``, ``Author``, ``Body``, ``Source``…); its
  answer is ignored, as Conversations does.
* **an outbound call** (``Simulator.answer``) — plays Twilio placing a call a
  Calls API request asked for (``To``, ``From``, ``Url``, ``Method``,
  ``StatusCallback``, ``MachineDetection``… — e.g. Make Outgoing Call's): when
  the scripted callee answers (``CallScript.outcome="answer"``) it requests
  ``Url`` with ``CallStatus=in-progress``, ``Direction=outbound-api`` (plus
  ``AnsweredBy`` when machine detection was asked for), follows the TwiML as
  for an incoming call, then POSTs ``completed`` to ``StatusCallback``; a
  ``busy``, ``no-answer``, ``failed`` or ``canceled`` outcome only POSTs that
  final status to ``StatusCallback``, as Twilio does.

Every request carries ``X-Twilio-Signature`` computed with
``twilio.request_validator.RequestValidator.compute_signature`` over the full
URL (and, for POST, the form parameters), like Twilio. The result is a
:class:`Transcript`; ``str(transcript)`` is the printable form.

Library use (tests)::

    sim = Simulator(base_url, account_sid, auth_token)
    transcript = await sim.call(flow_sid, CallScript(inputs=["2"]))
    assert transcript.said == ["Welcome", "You chose two"]

Command line (defaults from ``SWITCHBOARD_PUBLIC_BASE_URL``, ``SWITCHBOARD_ACCOUNT_SID``, ``SWITCHBOARD_AUTH_TOKEN``)::

    python -m devtools.simulator call FWxxx --input 1 --input "speech:yes please"
    python -m devtools.simulator sms FWxxx --body "hello"
    python -m devtools.simulator answer --to +15550100001 --from +15550109999 --url URL --status-callback URL
    python -m devtools.simulator twiml-app --port 8099 --say "Hi from the app" --param foo=bar
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode, urljoin, urlsplit

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

__all__ = ["OUTCOMES", "CallScript", "Simulator", "Transcript", "Turn", "main", "twiml_app"]

API_VERSION = "2010-04-01"
#: How the callee of an outbound call (``Simulator.answer``) responds: ``answer``, or a final status.
OUTCOMES = ("answer", "busy", "no-answer", "failed", "canceled")


@dataclass
class CallScript:
    """What the simulated caller and the far end do.

    ``inputs`` answer successive ``<Gather>`` verbs: digits (``"42"``),
    ``"speech:<words>"``, or ``""`` for no input. When they run out, the caller
    hangs up at the next ``<Gather>`` (``hangup_when_out_of_input``) instead of
    looping on a menu for ever.
    """

    inputs: Sequence[str] = ()
    dial_status: str = "completed"  # DialCallStatus the <Dial> action reports
    dial_duration: int = 12
    hangup_during_dial: bool = False  # the caller hangs up while connected (action has CallStatus=completed)
    record: str = "message"  # "message" | "silence" (no action, Twilio goes on) | "hangup" (message, then hang up)
    recording_duration: int = 7
    queue_result: str = "hangup"  # QueueResult the <Enqueue> action reports; "hangup": the caller hung up waiting
    queue_time: int = 30
    hangup_when_out_of_input: bool = True
    status_callback: bool = True
    max_requests: int = 200
    outcome: str = "answer"  # outbound calls (``Simulator.answer``): one of ``OUTCOMES``
    answered_by: str = "human"  # AnsweredBy of an answered outbound call that asked for MachineDetection
    #: Result the <Pay> action reports (success, too-many-failed-attempts, payment-connector-error,
    #: caller-interrupted-with-star, caller-hung-up, validation-error, internal-error).
    pay_result: str = "success"
    #: VirtualAgentStatus the <Connect><VirtualAgent> action reports (completed, live-agent-handoff, hangup, failed…);
    #: "hangup" also ends the call.
    virtual_agent_status: str = "completed"


@dataclass(frozen=True)
class Turn:
    """One thing that happened on the simulated line."""

    #: request | say | play | pause | gather | redirect | dial | record | enqueue | pay | stream | virtual-agent |
    #: message | hangup | reject |
    #: unanswered (an outbound call's busy/no-answer/failed/canceled outcome) | error | other
    kind: str
    text: str = ""
    attrs: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.kind == "request":
            return f"> {self.text}"
        detail = ",".join(f"{k}={v}" for k, v in sorted(self.attrs.items()) if k in _SHOWN)
        return f"  {self.kind}{f' [{detail}]' if detail else ''}: {self.text}" if self.text else f"  {self.kind}"


_SHOWN = frozenset({"voice", "language", "loop", "method", "status", "digits"})


@dataclass
class Transcript:
    """Everything that happened on one call or message exchange, in order."""

    kind: str  # "call" | "outbound-call" | "message"
    sid: str
    from_: str
    to: str
    turns: list[Turn] = field(default_factory=list)

    def add(self, kind: str, text: str = "", attrs: Mapping[str, str] | None = None) -> None:
        self.turns.append(Turn(kind, text, dict(attrs or {})))

    def of(self, kind: str) -> list[Turn]:
        return [t for t in self.turns if t.kind == kind]

    @property
    def said(self) -> list[str]:
        """What the caller heard spoken, in order (``<Say>``, also inside ``<Gather>``)."""
        return [t.text for t in self.turns if t.kind == "say"]

    @property
    def requests(self) -> list[str]:
        return [t.text for t in self.of("request")]

    @property
    def messages(self) -> list[str]:
        return [t.text for t in self.of("message")]

    def __str__(self) -> str:
        head = f"{self.kind} {self.sid} from {self.from_} to {self.to}"
        return "\n".join([head, *(str(t) for t in self.turns)])


@dataclass
class _Next:
    method: str
    url: str
    params: dict[str, str]
    last: bool = False  # the call is over once this request is made (its answer is ignored)


class Simulator:
    """Twilio's side of calls and messages, against flow webhooks under ``base_url``."""

    def __init__(self, base_url: str, account_sid: str, auth_token: str,
                 session: aiohttp.ClientSession | None = None, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.account_sid = account_sid
        self.validator = RequestValidator(auth_token)
        self._session = session
        self.timeout = timeout

    def webhook_url(self, flow_sid: str) -> str:
        return f"{self.base_url}/v1/Accounts/{self.account_sid}/Flows/{flow_sid}"

    # -- signed HTTP -----------------------------------------------------------------------------

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """``X-Twilio-Signature`` for a request to ``url`` with form ``params`` (empty for GET)."""
        return str(self.validator.compute_signature(url, dict(params)))

    async def request(self, method: str, url: str, params: Mapping[str, str],
                      signature: str | None = None) -> tuple[int, str]:
        """Send one webhook request as Twilio would; returns (status, body)."""
        method = method.upper()
        if method == "GET":
            sep = "&" if urlsplit(url).query else "?"
            url = f"{url}{sep}{urlencode(dict(params))}" if params else url
            form: dict[str, str] = {}
        else:
            form = dict(params)
        headers = {"X-Twilio-Signature": signature if signature is not None else self.sign(url, form),
                   "User-Agent": "TwilioProxy/1.1 (switchboard simulator)"}
        session = self._session or aiohttp.ClientSession()
        try:
            async with session.request(method, url, data=form if method != "GET" else None, headers=headers,
                                       timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                return response.status, await response.text()
        finally:
            if self._session is None:
                await session.close()

    # -- calls -----------------------------------------------------------------------------------

    def call_params(self, call_sid: str, from_: str, to: str, status: str,
                    direction: str = "inbound") -> dict[str, str]:
        return {"AccountSid": self.account_sid, "ApiVersion": API_VERSION, "CallSid": call_sid,
                "CallStatus": status, "Called": to, "Caller": from_, "Direction": direction,
                "From": from_, "To": to}

    async def call(self, flow_sid: str, script: CallScript | None = None, from_: str = "+15550100001",
                   to: str = "+15550109999", extra: Mapping[str, str] | None = None,
                   call_sid: str | None = None) -> Transcript:
        """Place a call into the flow and follow it until it ends; returns the transcript."""
        script = script or CallScript()
        sid = call_sid or "CA" + secrets.token_hex(16)
        transcript = Transcript("call", sid, from_, to)
        webhook = self.webhook_url(flow_sid)
        first = _Next("POST", webhook, {**self.call_params(sid, from_, to, "ringing"), **(extra or {})})
        await self._converse(transcript, first, script, self.call_params(sid, from_, to, "in-progress"))
        if script.status_callback:
            params = self.call_params(sid, from_, to, "completed") | {"CallDuration": "30"}
            await self._fetch(transcript, _Next("POST", webhook, params))
        return transcript

    async def answer(self, call: Mapping[str, str], script: CallScript | None = None,
                     call_sid: str | None = None) -> Transcript:
        """Play Twilio placing the outbound call a Calls API request asked for; ``call`` is its form fields.

        With ``script.outcome`` ``"answer"`` the callee picks up: ``Url`` is requested (``Method``, POST by
        default) and its TwiML followed as for an incoming call (``script`` answers the ``<Gather>``s…),
        then ``completed`` goes to ``StatusCallback``. Any other outcome (``busy``, ``no-answer``,
        ``failed``, ``canceled``) is only reported to ``StatusCallback``. Every request is signed.
        """
        script = script or CallScript()
        if script.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {script.outcome!r}")
        sid = call_sid or call.get("Sid") or "CA" + secrets.token_hex(16)
        from_, to = call.get("From", ""), call.get("To", "")
        transcript = Transcript("outbound-call", sid, from_, to)
        base = self.call_params(sid, from_, to, "in-progress", "outbound-api")
        if script.outcome == "answer":
            answered = dict(base)
            if call.get("MachineDetection"):
                answered |= {"AnsweredBy": script.answered_by, "MachineDetectionDuration": "1800"}
            first = _Next(call.get("Method") or "POST", call.get("Url", ""), answered)
            await self._converse(transcript, first, script, base)
            final, duration = "completed", "30"
        else:
            transcript.add("unanswered", script.outcome)
            final, duration = script.outcome, "0"
        if call.get("StatusCallback") and script.status_callback:
            params = self.call_params(sid, from_, to, final, "outbound-api") | {"CallDuration": duration}
            await self._fetch(transcript, _Next(call.get("StatusCallbackMethod") or "POST", call["StatusCallback"],
                                                params))
        return transcript

    async def _converse(self, transcript: Transcript, step: _Next | None, script: CallScript,
                        base: dict[str, str]) -> None:
        """Request ``step`` and follow the TwiML answers until the call ends (``base``: every later request's)."""
        inputs = list(script.inputs)
        requests = 0
        while step is not None:
            requests += 1
            if requests > script.max_requests:
                transcript.add("error", f"gave up after {script.max_requests} requests")
                break
            status, body = await self._fetch(transcript, step)
            if step.last:
                break
            if status != 200:
                transcript.add("error", f"HTTP {status} from {step.url}: {body[:200]}")
                break  # Twilio would say "an application error has occurred" and hang up
            step = self._play_call(transcript, body, step.url, inputs, script, base)

    async def _fetch(self, transcript: Transcript, step: _Next) -> tuple[int, str]:
        shown = {k: v for k, v in step.params.items() if k in _INTERESTING}
        transcript.add("request", f"{step.method} {step.url}" + (f" {urlencode(shown)}" if shown else ""))
        return await self.request(step.method, step.url, step.params)

    def _play_call(self, transcript: Transcript, body: str, url: str, inputs: list[str], script: CallScript,
                   base: dict[str, str]) -> _Next | None:
        """Run one TwiML document; return the next request Twilio makes, or ``None`` when the call ends."""
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            transcript.add("error", f"not TwiML ({exc}): {body[:200]}")
            return None
        for verb in root:
            tag, attrs, text = verb.tag, dict(verb.attrib), (verb.text or "").strip()
            method = attrs.get("method", "POST")
            if tag in ("Say", "Play", "Pause"):
                self._speak(transcript, verb)
            elif tag == "Gather":
                for inner in verb:
                    self._speak(transcript, inner)
                if not inputs and script.hangup_when_out_of_input:
                    transcript.add("hangup", "caller hangs up (no scripted input left)")
                    return None
                answer = inputs.pop(0) if inputs else ""
                if not answer:
                    transcript.add("gather", "(no input)", attrs)
                    continue  # Twilio skips the action and goes on with the next verb
                transcript.add("gather", answer, attrs)
                if answer.startswith("speech:"):
                    result = {"SpeechResult": answer[len("speech:"):].strip(), "Confidence": "0.92"}
                else:
                    result = {"Digits": answer}
                return _Next(method, urljoin(url, attrs.get("action", url)), base | result)
            elif tag == "Redirect":
                transcript.add("redirect", text, attrs)
                return _Next(method, urljoin(url, text), dict(base))
            elif tag == "Dial":
                targets = [f"{child.tag}:{(child.text or '').strip()}" for child in verb] or [text]
                transcript.add("dial", ", ".join(targets), attrs | {"status": script.dial_status})
                if "action" not in attrs:
                    continue
                result = {"DialCallStatus": script.dial_status, "DialCallSid": "CA" + secrets.token_hex(16),
                          "DialCallDuration": str(script.dial_duration if script.dial_status == "completed" else 0)}
                if script.hangup_during_dial:
                    return _Next(method, urljoin(url, attrs["action"]), base | result | {"CallStatus": "completed"},
                                 last=True)
                return _Next(method, urljoin(url, attrs["action"]), base | result)
            elif tag == "Record":
                transcript.add("record", script.record, attrs)
                if script.record == "silence" or "action" not in attrs:
                    continue  # an empty recording: Twilio goes on with the next verb
                rec = "RE" + secrets.token_hex(16)
                result = {"RecordingSid": rec, "RecordingDuration": str(script.recording_duration),
                          "RecordingUrl": f"https://api.twilio.com/{API_VERSION}/Accounts/{self.account_sid}"
                                          f"/Recordings/{rec}", "Digits": "hangup" if script.record == "hangup" else "#"}
                if script.record == "hangup":
                    return _Next(method, urljoin(url, attrs["action"]), base | result | {"CallStatus": "completed"},
                                 last=True)
                return _Next(method, urljoin(url, attrs["action"]), base | result)
            elif tag == "Enqueue":
                transcript.add("enqueue", text or attrs.get("workflowSid", ""), attrs | {"status": script.queue_result})
                hung_up = script.queue_result == "hangup"
                if "action" not in attrs:
                    if hung_up:
                        return None
                    continue  # Twilio goes on with the next verb once the call leaves the queue
                result = {"QueueResult": script.queue_result, "QueueSid": "QU" + secrets.token_hex(16),
                          "QueueTime": str(script.queue_time)}
                return _Next(method, urljoin(url, attrs["action"]),
                             base | result | ({"CallStatus": "completed"} if hung_up else {}), last=hung_up)
            elif tag == "Pay":
                found = self._pay(transcript, verb, url, script, base)
                if found is not None:
                    return found
            elif tag in ("Start", "Stop"):
                for noun in verb:  # non-blocking: Twilio starts/stops the stream and goes on at once
                    transcript.add("stream", f"{tag.lower()} {noun.tag}", dict(noun.attrib))
            elif tag == "Connect":
                found = self._connect(transcript, verb, url, script, base)
                if found is not None:
                    return found
            elif tag in ("Hangup", "Reject"):
                transcript.add(tag.lower(), attrs.get("reason", ""))
                return None
            else:
                transcript.add("other", f"<{tag}> (not simulated; skipped)", attrs)
        transcript.add("hangup", "end of TwiML")
        return None

    def _pay(self, transcript: Transcript, verb: ET.Element, url: str, script: CallScript,
             base: dict[str, str]) -> _Next | None:
        """``<Pay>``: the caller keys a test card in; the action reports ``script.pay_result``."""
        attrs = dict(verb.attrib)
        transcript.add("pay", script.pay_result, attrs)
        if "action" not in attrs:
            return None  # no action to report to: go on with the next verb
        charged = float(attrs.get("chargeAmount", "0") or 0) > 0
        result = {"Result": script.pay_result, "PaymentMethod": attrs.get("paymentMethod", "credit-card"),
                  "PaymentConnector": attrs.get("paymentConnector", "Default")}
        if script.pay_result == "success":
            result |= {"PaymentToken": "tok_" + secrets.token_hex(8), "PaymentCardNumber": "xxxx-xxxx-xxxx-1111",
                       "PaymentCardType": "visa", "ExpirationDate": "1230", "SecurityCode": "xxx",
                       "PaymentCardPostalCode": "94105"}
            if charged:
                result["PaymentConfirmationCode"] = "ch_" + secrets.token_hex(8)
        elif script.pay_result == "payment-connector-error":
            result |= {"PaymentError": "card declined", "ConnectorError": "card_declined"}
        hung_up = script.pay_result == "caller-hung-up"
        return _Next(attrs.get("method", "POST"), urljoin(url, attrs["action"]),
                     base | result | ({"CallStatus": "completed"} if hung_up else {}), last=hung_up)

    def _connect(self, transcript: Transcript, verb: ET.Element, url: str, script: CallScript,
                 base: dict[str, str]) -> _Next | None:
        """``<Connect><VirtualAgent>``: the agent talks, then hands the call back with its status."""
        attrs = dict(verb.attrib)
        agent = next((child for child in verb if child.tag == "VirtualAgent"), None)
        if agent is None:
            transcript.add("other", "<Connect> (only <VirtualAgent> is simulated; skipped)", attrs)
            return None
        status = script.virtual_agent_status
        transcript.add("virtual-agent", agent.attrib.get("connectorName", ""), dict(agent.attrib) | {"status": status})
        if "action" not in attrs:
            return None  # no action to report to: go on with the next verb
        result = {"VirtualAgentProvider": "DialogflowCX", "VirtualAgentStatus": status,
                  "VirtualAgentProviderData": '{"ConversationId": "conv-1", "EndUserId": "user-1"}'}
        hung_up = status == "hangup"
        return _Next(attrs.get("method", "POST"), urljoin(url, attrs["action"]),
                     base | result | ({"CallStatus": "completed"} if hung_up else {}), last=hung_up)

    @staticmethod
    def _speak(transcript: Transcript, verb: ET.Element) -> None:
        attrs, text = dict(verb.attrib), (verb.text or "").strip()
        if verb.tag == "Say":
            transcript.add("say", text, attrs)
        elif verb.tag == "Play":
            transcript.add("play", text or attrs.get("digits", ""), attrs)
        elif verb.tag == "Pause":
            transcript.add("pause", attrs.get("length", "1"), attrs)

    # -- messages --------------------------------------------------------------------------------

    async def message(self, flow_sid: str, body: str, from_: str = "+15550100001", to: str = "+15550109999",
                      extra: Mapping[str, str] | None = None, max_requests: int = 20) -> Transcript:
        """Send an inbound SMS into the flow; record ``<Message>`` replies and follow ``<Redirect>``."""
        sid = "SM" + secrets.token_hex(16)
        transcript = Transcript("message", sid, from_, to)
        params = {"AccountSid": self.account_sid, "ApiVersion": API_VERSION, "Body": body, "From": from_,
                  "MessageSid": sid, "NumMedia": "0", "NumSegments": "1", "SmsMessageSid": sid, "SmsSid": sid,
                  "SmsStatus": "received", "To": to, **(extra or {})}
        step: _Next | None = _Next("POST", self.webhook_url(flow_sid), params)
        for _ in range(max_requests):
            if step is None:
                break
            status, text = await self._fetch(transcript, step)
            if status != 200:
                transcript.add("error", f"HTTP {status} from {step.url}: {text[:200]}")
                break
            step = self._play_message(transcript, text, step.url, params)
        return transcript

    async def conversation(self, flow_sid: str, body: str, conversation_sid: str, author: str = "+15550100001",
                           source: str = "SMS", extra: Mapping[str, str] | None = None) -> Transcript:
        """Post a participant's new message in ``conversation_sid`` to the flow (``onMessageAdded``)."""
        sid = "IM" + secrets.token_hex(16)
        transcript = Transcript("conversation", sid, author, conversation_sid)
        params = {"EventType": "onMessageAdded", "AccountSid": self.account_sid, "ConversationSid": conversation_sid,
                  "ChatServiceSid": "IS" + "0" * 32, "MessageSid": sid, "Body": body, "Author": author,
                  "Source": source, "ParticipantSid": "MB" + secrets.token_hex(16), "Index": "0",
                  "Attributes": "{}", "RetryCount": "0", "WebhookType": "webhook", **(extra or {})}
        status, text = await self._fetch(transcript, _Next("POST", self.webhook_url(flow_sid), params))
        if status != 200:
            transcript.add("error", f"HTTP {status}: {text[:200]}")
        return transcript

    @staticmethod
    def _play_message(transcript: Transcript, body: str, url: str, params: dict[str, str]) -> _Next | None:
        try:
            root = ET.fromstring(body)
        except ET.ParseError as exc:
            transcript.add("error", f"not TwiML ({exc}): {body[:200]}")
            return None
        for verb in root:
            text = (verb.text or "").strip() or "".join((c.text or "") for c in verb if c.tag == "Body").strip()
            if verb.tag == "Message":
                transcript.add("message", text, dict(verb.attrib))
            elif verb.tag == "Redirect":
                transcript.add("redirect", text, dict(verb.attrib))
                return _Next(verb.attrib.get("method", "POST"), urljoin(url, text), dict(params))
            else:
                transcript.add("other", f"<{verb.tag}> (not simulated; skipped)", dict(verb.attrib))
        return None


_INTERESTING = frozenset({"CallStatus", "Digits", "SpeechResult", "DialCallStatus", "RecordingDuration", "QueueResult",
                          "Body", "AnsweredBy", "Result", "VirtualAgentStatus"})


# -- a TwiML app to redirect to ------------------------------------------------------------------


def twiml_app(say: str = "Hello from the TwiML app.",
              params: Mapping[str, str] | Sequence[Mapping[str, str]] | None = None,
              return_to: str | None = None, base_url: str | None = None, auth_token: str | None = None,
              seen: list[dict[str, str]] | None = None) -> web.Application:
    """A small TwiML app, the kind a TwiML Redirect widget hands a call to.

    It answers ``<Say>say</Say><Redirect>`` back to the flow webhook with
    ``?FlowEvent=return`` plus ``params``, which returns control to the flow.
    The webhook is ``return_to``, or built from ``base_url``, the request's
    ``AccountSid`` and the ``flow`` query parameter (put ``?flow={{flow.flow_sid}}``
    in the widget's URL). The query parameter ``say`` overrides the text.
    With ``auth_token`` it refuses requests whose ``X-Twilio-Signature`` is
    wrong (403). Every request's parameters are appended to ``seen``. ``params``
    may be a list: the n-th request returns with the n-th entry (the last one
    repeats).
    """
    sequence = [params or {}] if params is None or isinstance(params, Mapping) else list(params) or [{}]
    count = [0]

    async def handle(request: web.Request) -> web.Response:
        form = dict(await request.post()) if request.method == "POST" else {}
        values = {k: str(v) for k, v in {**request.query, **form}.items()}
        values["_method"] = request.method
        if seen is not None:
            seen.append(values)
        if auth_token is not None:
            url = f"{request.scheme}://{request.host}{request.raw_path}"
            fields = {k: str(v) for k, v in form.items()}
            if not RequestValidator(auth_token).validate(url, fields, request.headers.get("X-Twilio-Signature", "")):
                return web.Response(status=403, text="bad signature")
        target = return_to
        if target is None and base_url and "flow" in request.query:
            account = values.get("AccountSid", "")
            target = f"{base_url.rstrip('/')}/v1/Accounts/{account}/Flows/{request.query['flow']}"
        response = VoiceResponse()
        response.say(request.query.get("say", say))
        extra = sequence[min(count[0], len(sequence) - 1)]
        count[0] += 1
        if target:
            query = urlencode({"FlowEvent": "return", **extra})
            response.redirect(f"{target}{'&' if '?' in target else '?'}{query}", method="POST")
        return web.Response(text=str(response), content_type="application/xml")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


# -- command line --------------------------------------------------------------------------------


def _pairs(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _defaults() -> dict[str, str]:
    from shared.settings import Settings

    settings = Settings.from_env(os.environ)
    return {"base_url": settings.public_base_url, "account_sid": settings.account_sid,
            "auth_token": settings.auth_token}


def _parser(prog: str = "python -m devtools.simulator") -> argparse.ArgumentParser:
    d = _defaults()
    parser = argparse.ArgumentParser(prog=prog,
                                     description="Play Twilio's side of calls and messages against a flow webhook.")
    parser.add_argument("--base-url", default=d["base_url"], help="Switchboard's public base URL")
    parser.add_argument("--account-sid", default=d["account_sid"])
    parser.add_argument("--auth-token", default=d["auth_token"], help="signs every request")
    sub = parser.add_subparsers(dest="command", required=True)
    call = sub.add_parser("call", help="place a call into a flow and follow its TwiML")
    call.add_argument("flow_sid")
    call.add_argument("--from", dest="from_", default="+15550100001")
    call.add_argument("--to", default="+15550109999")
    call.add_argument("--input", action="append", default=[],
                      help="answer for the next <Gather>: digits, 'speech:words', or '' for none (repeatable)")
    call.add_argument("--dial-status", default="completed", help="DialCallStatus the <Dial> action reports")
    call.add_argument("--hangup-during-dial", action="store_true")
    call.add_argument("--record", choices=("message", "silence", "hangup"), default="message")
    call.add_argument("--queue-result", default="hangup", help="QueueResult the <Enqueue> action reports")
    call.add_argument("--pay-result", default="success", help="Result the <Pay> action reports")
    call.add_argument("--virtual-agent-status", default="completed",
                      help="VirtualAgentStatus the <Connect><VirtualAgent> action reports")
    call.add_argument("--param", action="append", default=[], help="extra webhook parameter K=V (repeatable)")
    answer = sub.add_parser("answer", help="play Twilio placing an outbound call (a Calls API request's fields)")
    answer.add_argument("--to", required=True, help="the number called (the flow's contact)")
    answer.add_argument("--from", dest="from_", required=True, help="the caller ID (the flow's number)")
    answer.add_argument("--url", required=True, help="the call's Url (Make Outgoing Call: WEBHOOK?FlowEvent=answered&…)")
    answer.add_argument("--status-callback", default="", help="the call's StatusCallback")
    answer.add_argument("--call-sid", default=None)
    answer.add_argument("--outcome", choices=OUTCOMES, default="answer")
    answer.add_argument("--machine-detection", default="", help="as sent to the Calls API (adds AnsweredBy)")
    answer.add_argument("--answered-by", default="human")
    answer.add_argument("--input", action="append", default=[], help="answer for the next <Gather> (repeatable)")
    answer.add_argument("--queue-result", default="hangup", help="QueueResult the <Enqueue> action reports")
    answer.add_argument("--pay-result", default="success", help="Result the <Pay> action reports")
    answer.add_argument("--virtual-agent-status", default="completed",
                        help="VirtualAgentStatus the <Connect><VirtualAgent> action reports")
    sms = sub.add_parser("sms", help="send an inbound SMS into a flow")
    sms.add_argument("flow_sid")
    sms.add_argument("--from", dest="from_", default="+15550100001")
    sms.add_argument("--to", default="+15550109999")
    sms.add_argument("--body", required=True)
    sms.add_argument("--param", action="append", default=[])
    app = sub.add_parser("twiml-app", help="serve a TwiML app that says something and returns to the flow")
    app.add_argument("--port", type=int, default=8099)
    app.add_argument("--say", default="Hello from the TwiML app.")
    app.add_argument("--return-to", default=None, help="flow webhook URL (default: built from ?flow=FW…)")
    app.add_argument("--param", action="append", default=[], help="parameter added to the return, K=V")
    return parser


async def _run(args: argparse.Namespace) -> int:
    if args.command == "twiml-app":
        application = twiml_app(args.say, _pairs(args.param), args.return_to, args.base_url)
        runner = web.AppRunner(application, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port).start()
        print(f"TwiML app on http://127.0.0.1:{args.port}/ (Ctrl-C to stop)", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()
        return 0
    simulator = Simulator(args.base_url, args.account_sid, args.auth_token)
    if args.command == "call":
        script = CallScript(inputs=args.input, dial_status=args.dial_status,
                            hangup_during_dial=args.hangup_during_dial, record=args.record,
                            queue_result=args.queue_result, pay_result=args.pay_result,
                            virtual_agent_status=args.virtual_agent_status)
        transcript = await simulator.call(args.flow_sid, script, args.from_, args.to, _pairs(args.param))
    elif args.command == "answer":
        call = {"To": args.to, "From": args.from_, "Url": args.url, "StatusCallback": args.status_callback,
                "MachineDetection": args.machine_detection}
        script = CallScript(inputs=args.input, queue_result=args.queue_result, outcome=args.outcome,
                            answered_by=args.answered_by, pay_result=args.pay_result,
                            virtual_agent_status=args.virtual_agent_status)
        transcript = await simulator.answer(call, script, args.call_sid)
    else:
        transcript = await simulator.message(args.flow_sid, args.body, args.from_, args.to, _pairs(args.param))
    print(transcript)
    return 1 if transcript.of("error") else 0


def main(argv: list[str] | None = None, prog: str = "python -m devtools.simulator") -> int:
    """Run the simulator; ``prog`` is the name its help and errors show (``switchboard simulate`` from the CLI)."""
    args = _parser(prog).parse_args(argv)
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
