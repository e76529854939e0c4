"""Make Outgoing Call (``make-outgoing-call-v2``, and v1): call the contact through Twilio's Calls API, then run on it.

``make-outgoing-call-v1`` works the same way with v1's events: an answered call
whose ``AnsweredBy`` is a machine or fax (machine detection) takes
``answeredByMachine`` instead of ``answered`` (the flow then runs on that
call too), and a call that ended (``completed``) before it reached the flow
takes ``hangup`` instead of ``failed``; ``busy``, ``noAnswer`` and ``failed``
are v2's.

Studio places the call with the Calls REST API and the flow goes on once the
callee answers, on that call: the TwiML widgets after ``answered`` talk to the
callee. The http-worker performs the request with the account's credentials
(``twilio_api.post``; request id and idempotency key from execution and step)::

    POST {api}/2010-04-01/Accounts/{AccountSid}/Calls.json
      To=<to>  From=<from>
      Url=WEBHOOK?FlowEvent=answered&FlowExecutionSid=FN…&FlowWait=<token>      Method=POST
      StatusCallback=WEBHOOK?FlowExecutionSid=FN…&FlowWait=<token>              StatusCallbackMethod=POST
      Timeout=<timeout>  SendDigits=<send_digits>
      SipAuthUsername=<sip_auth_username>  SipAuthPassword=<sip_auth_password>
      with record: Record=true  RecordingChannels=<recording_channels>
                   RecordingStatusCallback=<recording_status_callback>  Trim=<trim>
      with detect_answering_machine: MachineDetection=<machine_detection, default Enable>
                   MachineDetectionTimeout, MachineDetectionSpeechThreshold,
                   MachineDetectionSpeechEndThreshold, MachineDetectionSilenceTimeout

``WEBHOOK`` is the flow webhook on ``SWITCHBOARD_PUBLIC_BASE_URL``. Every
optional field is sent only when its property renders non-empty (Liquid), so
Twilio's defaults apply otherwise. The recording fields go only with
``record: true`` and the machine-detection fields only with
``detect_answering_machine: true``: Studio's editor shows them only then, and
exports keep the hidden values (``"record": false, "recording_channels":
"mono"``). ``trim`` ``"true"``/``"false"`` (an older export style) becomes
``trim-silence``/``do-not-trim``.

``to`` and ``from`` default to ``{{contact.channel.address}}`` and
``{{flow.channel.address}}``. Studio documents that the number called is the
execution's contact and cannot be changed; a ``to`` that renders to anything
else takes ``failed`` without placing a call (Twilio's requests for the call
would be routed to another contact). A ``from`` that is a Messaging Service
(``MG…``) cannot place a call either (Studio: not usable then).

The ``FlowExecutionSid`` and ``FlowWait`` query parameters name the
execution and the wait (its token), so the callee's requests find the
execution even before the Calls API's answer (with the ``CallSid``) reached
the processor, and a request for an earlier call of the same execution is
told apart (``webhook_routing``). They are not stored in ``widgets.NAME``.

Transitions and ``widgets.NAME``:

* ``answered`` — Twilio requested ``Url``: the callee picked up. That request
  resumes the execution and is answered with the flow's next TwiML (Say/Play,
  Gather, Enqueue Call…); from then on the execution controls the call like an
  inbound one (``CallSid`` registered on the route: its ``FlowEvent`` requests,
  keep-alives and final status callback work as for an incoming call).
  ``widgets.NAME`` is that request's parameters as Twilio names them:
  ``CallSid``, ``CallStatus`` (``in-progress``), ``Direction``
  (``outbound-api``), ``From``, ``To``, ``AccountSid``, ``ApiVersion``, and
  ``AnsweredBy`` (``human``, ``machine_start``, ``fax``, ``unknown``…) when
  machine detection ran.
* ``busy`` / ``noAnswer`` / ``failed`` — the status callback's final
  ``CallStatus`` (``UNANSWERED``): ``busy`` → ``busy``, ``no-answer`` →
  ``noAnswer``, ``failed`` → ``failed``, ``canceled`` (the call was cancelled
  through the API before it was answered) → ``failed``, and ``completed``
  without the ``Url`` request ever reaching the flow (the flow never got the
  call) → ``failed``. ``widgets.NAME`` is the callback's parameters
  (``CallSid``, ``CallStatus``, ``CallDuration``, ``SipResponseCode``…).
* ``failed`` also when the Calls API refuses (non-2xx: ``error`` is Twilio's
  code and message, e.g. ``Twilio error 21217: … (HTTP 400)``) or does not
  answer (timeout, connection error), and without a request when the call
  cannot be placed: a Liquid error (``81018: …``), ``to`` not the contact,
  no ``from``, a Messaging Service ``from``, or an execution that already
  controls a live call (an incoming call's execution: Studio's widget calls
  the contact from REST- or message-started executions) — ``error`` says why.

A late or repeated status callback (Twilio retries), or any request for a call
this execution no longer waits for, changes nothing: a stale ``Url`` request
(a call whose Calls API request had timed out and was retried) is answered
with an empty ``<Response/>``, which hangs that call up.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from shared.flow import State
from shared.liquid_render import TemplateError
from shared.messages import Event, HttpResult, WebhookReceived

from ..sprint import Next, Park, Sprint
from ..state import ExecutionState
from . import twilio_api
from .http import truthy
from .voice import webhook_url

__all__ = [
    "ANSWERED",
    "EXECUTION_PARAM",
    "LIVE",
    "STALE",
    "UNANSWERED",
    "WAIT_KIND",
    "WAIT_PARAM",
    "WAITING",
    "call_fields",
    "call_parameters",
    "execution_of",
    "make_outgoing_call",
    "placed_call",
    "resume_make_outgoing_call",
]

API = "the Calls API"
WAIT_KIND = "call"  # the wait of a call being placed: the Calls API's answer, then the callee's first request
ANSWERED = "answered"
EXECUTION_PARAM = "FlowExecutionSid"
WAIT_PARAM = "FlowWait"
ROUTING_PARAMS = frozenset({EXECUTION_PARAM, WAIT_PARAM, "FlowEvent"})
#: A final ``CallStatus`` reported before the call reached the flow → the transition.
UNANSWERED = {"busy": "busy", "no-answer": "noAnswer", "failed": "failed", "canceled": "failed",
              "completed": "failed"}
#: ``make-outgoing-call-v1`` has a ``hangup`` event: a call that ended before it reached the flow takes it.
UNANSWERED_V1 = {**UNANSWERED, "completed": "hangup"}
V1 = "make-outgoing-call-v1"
#: ``AnsweredBy`` values (machine detection) that v1's ``answeredByMachine`` stands for.
MACHINE = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other", "fax")
TRIM = {"true": "trim-silence", "false": "do-not-trim"}
#: (property, Calls API field), sent when the property renders non-empty.
CALL_FIELDS = (("timeout", "Timeout"), ("send_digits", "SendDigits"), ("sip_auth_username", "SipAuthUsername"),
               ("sip_auth_password", "SipAuthPassword"))
RECORDING_FIELDS = (("recording_channels", "RecordingChannels"),
                    ("recording_status_callback", "RecordingStatusCallback"))
MACHINE_DETECTION_FIELDS = (
    ("machine_detection_timeout", "MachineDetectionTimeout"),
    ("machine_detection_speech_threshold", "MachineDetectionSpeechThreshold"),
    ("machine_detection_speech_end_threshold", "MachineDetectionSpeechEndThreshold"),
    ("machine_detection_silence_timeout", "MachineDetectionSilenceTimeout"),
)
#: How a request that names an execution in its URL relates to it (``placed_call``).
WAITING, LIVE, STALE = "waiting", "live", "stale"


class _Unplaceable(ValueError):
    """No call can be placed; the message says why."""


def _text(sprint: Sprint, props: Mapping[str, Any], key: str) -> str:
    value = props.get(key)
    return sprint.render(value).strip() if value not in (None, "") else ""


def call_fields(sprint: Sprint, props: Mapping[str, Any], token: str) -> list[list[str]]:
    """The rendered form fields of the Calls API request; raises ``_Unplaceable`` or ``TemplateError``."""
    state = sprint.state
    to = sprint.render(props.get("to") or "{{contact.channel.address}}").strip()
    sender = sprint.render(props.get("from") or "{{flow.channel.address}}").strip()
    if to != state.contact_address:
        raise _Unplaceable(f"81008: Studio calls the execution's contact ({state.contact_address or 'none'}); "
                           f"'to' rendered {to!r}; no call was placed")
    if not to:
        raise _Unplaceable("81008: the execution has no contact address to call; no call was placed")
    if not sender:
        raise _Unplaceable("81008: the call has no caller ID ('from' rendered empty); no call was placed")
    if sender.startswith("MG"):
        raise _Unplaceable(f"81008: 'from' is a Messaging Service ({sender}), which cannot place a call; "
                           "no call was placed")
    routing = {EXECUTION_PARAM: state.sid, WAIT_PARAM: token}
    base = webhook_url(sprint)
    fields = [["To", to], ["From", sender], ["Url", f"{base}?{urlencode({'FlowEvent': ANSWERED, **routing})}"],
              ["Method", "POST"], ["StatusCallback", f"{base}?{urlencode(routing)}"], ["StatusCallbackMethod", "POST"]]
    fields.extend(_optional(sprint, props, CALL_FIELDS))
    if truthy(props.get("record")):
        fields.append(["Record", "true"])
        fields.extend(_optional(sprint, props, RECORDING_FIELDS))
        if trim := _text(sprint, props, "trim"):
            fields.append(["Trim", TRIM.get(trim.lower(), trim)])
    if truthy(props.get("detect_answering_machine")):
        fields.append(["MachineDetection", _text(sprint, props, "machine_detection") or "Enable"])
        fields.extend(_optional(sprint, props, MACHINE_DETECTION_FIELDS))
    return fields


def _optional(sprint: Sprint, props: Mapping[str, Any], names: tuple[tuple[str, str], ...]) -> list[list[str]]:
    return [[field, value] for key, field in names if (value := _text(sprint, props, key))]


def make_outgoing_call(sprint: Sprint, widget: State) -> Next | Park:
    state = sprint.state
    if state.call_sid and not state.call_released:
        return Next("failed", {"error": f"81008: this execution already controls a live call ({state.call_sid}); "
                                        "Make Outgoing Call places a call from an execution without one (REST "
                                        "API or message); no call was placed"})
    token = sprint.token()
    try:
        fields = call_fields(sprint, widget.properties, token)
    except TemplateError as exc:
        return Next("failed", {"error": f"81018: {exc}"})
    except _Unplaceable as exc:
        return Next("failed", {"error": str(exc)})
    wait, command = twilio_api.post(sprint, widget, "call", "Calls.json", fields, WAIT_KIND, (ANSWERED,))
    return Park(wait, (command,))


def resume_make_outgoing_call(sprint: Sprint, widget: State, event: Event) -> Next | Park | None:
    wait = sprint.state.wait
    if wait is None:
        return None
    if isinstance(event, HttpResult):
        if wait.data.get("sent"):
            return None  # a duplicate result
        if not event.ok:
            return Next("failed", {"error": twilio_api.twilio_error(event, API, "81008")})
        call = twilio_api.resource_variables(event.body)
        # Queued: from now on a replay never repeats the request; the callee's requests carry this CallSid.
        return Park(dataclasses.replace(wait, data={**wait.data, "sent": True, "call_sid": str(call.get("Sid") or "")}))
    if not isinstance(event, WebhookReceived):
        return None
    outputs = call_parameters(event.params)
    v1 = widget.type == V1
    if event.flow_event == ANSWERED:
        _take_call(sprint, event.call_sid)  # v1's answeredByMachine too: the flow talks to whatever picked up
        machine = v1 and str(outputs.get("AnsweredBy", "")) in MACHINE
        return Next("answeredByMachine" if machine else ANSWERED, outputs)
    status = str(outputs.get("CallStatus", ""))
    unanswered = UNANSWERED_V1 if v1 else UNANSWERED
    return Next(unanswered[status], outputs) if status in unanswered else None


def _take_call(sprint: Sprint, call_sid: str) -> None:
    """The execution now controls this call, as it would an incoming one."""
    state, route = sprint.state, sprint.route
    route.calls = {c: s for c, s in route.calls.items() if s != state.sid}  # an earlier call of it is over
    route.add(state.sid, call_sid)
    state.call_sid, state.call_released = call_sid, False


# -- routing the callee's requests (webhook_routing) ----------------------------------------------


def call_parameters(params: Any) -> dict[str, Any]:
    """A request's parameters without the flow's own routing parameters."""
    return {k: v for k, v in params.items() if k not in ROUTING_PARAMS} if isinstance(params, dict) else {}


def execution_of(params: Any) -> str:
    """The execution sid a request's URL names (a call this widget placed), or ``""``."""
    return str(params.get(EXECUTION_PARAM, "")) if isinstance(params, dict) else ""


def placed_call(state: ExecutionState, params: Any, call_sid: str) -> str:
    """How a request naming ``state`` in its URL relates to it; ``""`` when it names no execution.

    ``WAITING``: it is for the call the execution waits for now (its wait token, and the ``CallSid``
    the Calls API returned if that answer came first). ``LIVE``: it is the call the execution
    controls (e.g. that call's final status callback): handled like any request of a live call.
    ``STALE``: an earlier call, or a repeat after the wait was left: changes nothing.
    """
    if not execution_of(params):
        return ""
    wait = state.wait
    if (wait is not None and wait.kind == WAIT_KIND and str(params.get(WAIT_PARAM, "")) == wait.token
            and call_sid and wait.data.get("call_sid", "") in ("", call_sid)):
        return WAITING
    if call_sid and call_sid == state.call_sid:
        return LIVE
    return STALE
