"""Call Recording (``record-call``): start or stop recording the live call through Twilio's REST API.

Studio does this with the Call Recordings API on the call the execution is
handling, not with TwiML, so the call hears nothing and a webhook waiting for
the flow's next TwiML keeps waiting (the wait is an ``http`` wait, like Make
HTTP Request's). The http-worker performs the request with the account's
credentials (``twilio_api.post``; request id from execution and step).

``record_call: true`` (start)::

    POST {api}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Recordings.json
      RecordingStatusCallback=<recording_status_callback>
      RecordingStatusCallbackMethod=<recording_status_callback_method, upper-cased>
      RecordingStatusCallbackEvent=<each of recording_status_callback_events>   (one field per event)
      RecordingChannels=<recording_channels>   Trim=<trim>

  Each field only when its property renders non-empty (Liquid); Twilio's
  defaults apply otherwise (POST, ``completed``, ``mono``, ``do-not-trim``).
  ``recording_status_callback_events`` may list several events separated by
  spaces or commas (``"in-progress completed"``).

``record_call: false`` (stop)::

    POST {api}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}/Recordings/Twilio.CURRENT.json
      Status=stopped

  ``Twilio.CURRENT`` is the alias Twilio documents for the call's recording in
  progress, so the widget needs no Recording SID from an earlier start.

Transitions and ``widgets.NAME``:

* ``success`` — Twilio answered 2xx. ``widgets.NAME`` is the Recording resource
  it returned, in Studio's PascalCase: ``Sid`` (``RE…``), ``CallSid``,
  ``AccountSid``, ``Status`` (``in-progress`` after a start, ``stopped`` after
  a stop), ``Channels``, ``Source``, ``Track``, ``StartTime``, ``DateCreated``,
  ``DateUpdated``, ``Duration``, ``Uri``, ``ErrorCode``… (every scalar field;
  nested objects such as ``encryption_details`` are left out). Real flows
  build ``…/Recordings/{{widgets.NAME.Sid}}`` from them.
* ``failed`` — Twilio refused (non-2xx: ``error`` is Twilio's code and message,
  e.g. ``Twilio error 21220: … (HTTP 400)``), no answer came (timeout,
  connection error: ``error`` says so), or there is no live call to record (a
  REST-started or message execution has no ``CallSid``): then nothing is sent
  and ``error`` says why. A Liquid error in a property also takes ``failed``
  (81018) without a request.

A call whose caller already hung up (while an HTTP widget before this one
ran) still gets the request, as in Studio: Twilio refuses a call that is over
(21220) and the widget takes ``failed``; the next TwiML widget then ends the
execution (``call_ended``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from shared.flow import State
from shared.liquid_render import TemplateError
from shared.messages import Event, HttpResult

from ..sprint import Next, Park, Sprint
from . import twilio_api
from .http import truthy

__all__ = ["record_call", "resume_record_call"]

API = "the Call Recordings API"
CURRENT_RECORDING = "Twilio.CURRENT"
_EVENT_SEPARATORS = re.compile(r"[\s,]+")


def _start_fields(sprint: Sprint, props: Mapping[str, Any]) -> list[list[str]]:
    def text(key: str) -> str:
        value = props.get(key)
        return sprint.render(value).strip() if value not in (None, "") else ""

    fields: list[list[str]] = []
    if callback := text("recording_status_callback"):
        fields.append(["RecordingStatusCallback", callback])
    if method := text("recording_status_callback_method"):
        fields.append(["RecordingStatusCallbackMethod", method.upper()])
    events = [e for e in _EVENT_SEPARATORS.split(text("recording_status_callback_events")) if e]
    fields.extend(["RecordingStatusCallbackEvent", event] for event in events)
    if channels := text("recording_channels"):
        fields.append(["RecordingChannels", channels])
    if trim := text("trim"):
        fields.append(["Trim", trim])
    return fields


def record_call(sprint: Sprint, widget: State) -> Next | Park:
    state = sprint.state
    start = truthy(widget.properties.get("record_call"))
    if not state.call_sid:
        action = "start" if start else "stop"
        return Next("failed", {"error": f"record-call needs a live call to {action} recording; this execution "
                                        f"({state.channel}) has none, so nothing was sent"})
    call = f"Calls/{quote(state.call_sid, safe='')}/Recordings"
    if start:
        try:
            fields = _start_fields(sprint, widget.properties)
        except TemplateError as exc:
            return Next("failed", {"error": f"81018: {exc}"})
        path = f"{call}.json"
    else:
        path, fields = f"{call}/{CURRENT_RECORDING}.json", [["Status", "stopped"]]
    wait, command = twilio_api.post(sprint, widget, "recording", path, fields)
    return Park(wait, (command,))


def resume_record_call(sprint: Sprint, widget: State, event: Event) -> Next | None:
    if not isinstance(event, HttpResult):
        return None
    if not event.ok:
        return Next("failed", {"error": twilio_api.twilio_error(event, API)})
    return Next("success", twilio_api.resource_variables(event.body))
