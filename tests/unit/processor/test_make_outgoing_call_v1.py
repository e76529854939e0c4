"""Make Outgoing Call v1 (``make-outgoing-call-v1``): v2's Calls API request and routing with v1's events."""

from __future__ import annotations

from typing import Any

import pytest

from .harness import Harness, flow_of
from .test_make_outgoing_call import SETTINGS, call_resource, form, status_callback, twilio

V1_EVENTS = ("answered", "answeredByMachine", "busy", "noAnswer", "failed", "hangup")


def placing_v1(**props: Any) -> tuple[Harness, Any]:
    h = Harness(flow_of(
        {"name": "call", "type": "make-outgoing-call-v1",
         "properties": {"to": "{{contact.channel.address}}", "from": "{{flow.channel.address}}", **props},
         "transitions": [{"event": e, "next": f"on_{e}"} for e in V1_EVENTS]},
        *({"name": f"on_{e}", "type": "say-play", "properties": {"say": e}, "transitions": []} for e in V1_EVENTS)),
        settings=SETTINGS)
    h.start()
    (request,) = h.requests()
    h.result(request, 201, call_resource())
    return h, request


@pytest.mark.parametrize("answered_by,event", [("human", "answered"), ("unknown", "answered"),
                                               ("machine_start", "answeredByMachine"),
                                               ("machine_end_beep", "answeredByMachine"), ("fax", "answeredByMachine")])
def test_an_answered_call_takes_answered_or_answered_by_machine_and_the_flow_runs_on_it(answered_by: str,
                                                                                       event: str) -> None:
    h, request = placing_v1(detect_answering_machine=True)
    out = h.send(twilio(h, form(request)["Url"], reply="answered", AnsweredBy=answered_by))
    assert h.path()[1] == (event, "call", f"on_{event}")
    assert any(f"<Say loop=\"1\">{event}</Say>" in getattr(c, "twiml", "") for c in out.commands)
    assert h.context["widgets"]["call"]["AnsweredBy"] == answered_by


@pytest.mark.parametrize("status,event", [("busy", "busy"), ("no-answer", "noAnswer"), ("failed", "failed"),
                                          ("canceled", "failed"), ("completed", "hangup")])
def test_a_call_that_never_reached_the_flow_takes_v1s_transition(status: str, event: str) -> None:
    h, request = placing_v1()
    status_callback(h, request, status)
    assert h.path()[1][:2] == (event, "call")
