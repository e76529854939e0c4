"""Widget handlers, one module per family, registered by Studio widget type.

A handler's ``enter`` runs when an execution reaches the widget and returns
``Next`` (take a transition now) or ``Park`` (wait for an event). ``resume``
gets the event that ends a wait; it returns ``None`` when the event is not for
this wait, and the event is then ignored.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.flow import State
from shared.messages import Event

from ..sprint import Descend, Next, Park, Sprint
from . import flex, http, logic, messaging, outbound_call, payments, recording, streams, subflow, virtual_agent, voice

__all__ = ["ENTER", "RESUME", "Enter", "Resume"]

Enter = Callable[[Sprint, State], Next | Park | Descend]  # Descend: Run Subflow runs a subflow now
Resume = Callable[[Sprint, State, Event], Next | Park | None]

ENTER: dict[str, Enter] = {
    "set-variables": logic.set_variables,
    "split-based-on": logic.split_based_on,
    "make-http-request": http.make_http_request,
    "run-function": http.run_function,
    "send-message": messaging.send_message,
    "send-and-wait-for-reply": messaging.send_and_wait_for_reply,
    "add-twiml-redirect": voice.add_twiml_redirect,
    "say-play": voice.say_play,
    "gather-input-on-call": voice.gather_input_on_call,
    "connect-call-to": voice.connect_call_to,
    "record-voicemail": voice.record_voicemail,
    "enqueue-call": voice.enqueue_call,
    "record-call": recording.record_call,
    "make-outgoing-call-v2": outbound_call.make_outgoing_call,
    "make-outgoing-call-v1": outbound_call.make_outgoing_call,
    "run-subflow": subflow.run_subflow,
    "send-to-flex": flex.send_to_flex,
    "capture-payments": payments.capture_payments,
    "fork-stream": streams.fork_stream,
    "connect-virtual-agent": virtual_agent.connect_virtual_agent,
    "connect-virtual-agent-v2": virtual_agent.connect_virtual_agent,
}
RESUME: dict[str, Resume] = {
    "make-http-request": http.resume,
    "run-function": http.resume,
    "send-message": messaging.resume_send_message,
    "send-and-wait-for-reply": messaging.resume_send_and_wait,
    "add-twiml-redirect": voice.resume_redirect,
    "say-play": voice.resume_say_play,
    "gather-input-on-call": voice.resume_gather,
    "connect-call-to": voice.resume_connect_call_to,
    "record-voicemail": voice.resume_record_voicemail,
    "enqueue-call": voice.resume_enqueue_call,
    "record-call": recording.resume_record_call,
    "make-outgoing-call-v2": outbound_call.resume_make_outgoing_call,
    "make-outgoing-call-v1": outbound_call.resume_make_outgoing_call,
    "send-to-flex": flex.resume_send_to_flex,
    "capture-payments": payments.resume_capture_payments,
    "fork-stream": streams.resume_fork_stream,
    "connect-virtual-agent": virtual_agent.resume_connect_virtual_agent,
    "connect-virtual-agent-v2": virtual_agent.resume_connect_virtual_agent,
}
