"""Fork Stream (``fork-stream``): ``<Start>``/``<Stop>`` a stream, then ``next`` as soon as Twilio follows on."""

from __future__ import annotations

from typing import Any

import pytest

from .voice_helpers import WEBHOOK, XML, Store, call_event, flow, record, steps, twiml, widget

NEXT = f'<Redirect method="POST">{WEBHOOK}?FlowEvent=next</Redirect>'
PARAMS = [{"key": "caller", "value": "{{trigger.call.From}}"}, {"key": "lang", "value": "en"}]

CASES = [
    ("start a websocket stream with its parameters",
     {"stream_action": "start", "stream_name": "agent-assist", "stream_url": "wss://ws.example.com/{{flow.flow_sid}}",
      "stream_transport_type": "websocket", "stream_track": "both_tracks", "stream_parameters": PARAMS},
     '<Start><Stream name="agent-assist" track="both_tracks" url="wss://ws.example.com/FWflow">'
     '<Parameter name="caller" value="+15550001111" /><Parameter name="lang" value="en" /></Stream></Start>'),
    ("start with only a URL", {"stream_action": "start", "stream_url": "wss://ws.example.com/"},
     '<Start><Stream url="wss://ws.example.com/" /></Start>'),
    ("start a SIPREC session through a connector",
     {"stream_action": "start", "stream_name": "rec", "stream_transport_type": "siprec",
      "stream_connector": "SipRec1", "stream_track": "inbound_track", "stream_url": "ignored",
      "stream_parameters": PARAMS[1:]},
     '<Start><Siprec connectorName="SipRec1" name="rec" track="inbound_track">'
     '<Parameter name="lang" value="en" /></Siprec></Start>'),
    ("stop a stream by its name", {"stream_action": "stop", "stream_name": "agent-assist",
                                   "stream_url": "wss://ignored", "stream_parameters": PARAMS},
     '<Stop><Stream name="agent-assist" /></Stop>'),
    ("stop a SIPREC session", {"stream_action": "Stop", "stream_name": "rec", "stream_transport_type": "siprec"},
     '<Stop><Siprec name="rec" /></Stop>'),
]


@pytest.mark.parametrize("props,verb", [pytest.param(p, v, id=i) for i, p, v in CASES])
def test_fork_stream_starts_or_stops_the_stream_and_redirects_straight_back(props: dict[str, Any], verb: str) -> None:
    store = Store(flow(widget("fork", "fork-stream", {"next": "hello"}, **props),
                       widget("hello", "say-play", {}, say="Hello")))
    out = store.send(call_event())
    assert twiml(out) == f"{XML}<Response>{verb}{NEXT}</Response>"
    out = store.send(call_event(flow_event="next"))
    assert steps(out) == [("next", "fork", "hello")]
    assert '<Say loop="1">Hello</Say>' in twiml(out)
    assert record(out).context["widgets"]["fork"] == {}


def test_an_unknown_stream_action_takes_next_at_once_saying_why() -> None:
    store = Store(flow(widget("fork", "fork-stream", {"next": "hello"}, stream_action="pause"),
                       widget("hello", "say-play", {}, say="Hello")))
    out = store.send(call_event())
    assert steps(out)[1] == ("next", "fork", "hello")
    assert "stream_action must be start or stop" in record(out).context["widgets"]["fork"]["error"]
    assert "<Start>" not in twiml(out)
