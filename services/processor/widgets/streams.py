"""Fork Stream (``fork-stream``): start or stop streaming the live call's audio, then go on at once.

``stream_action`` ``start``::

    <Response>
      <Start><Stream name=".." url="wss://.." track="inbound_track|outbound_track|both_tracks">
          <Parameter name=".." value=".."/>…</Stream></Start>            (transport websocket, the default)
      <Start><Siprec name=".." connectorName=".." track="..">…</Siprec></Start>   (transport siprec)
      <Redirect method="POST">WEBHOOK?FlowEvent=next</Redirect>
    </Response>

``stream_action`` ``stop``: ``<Stop><Stream name=".."/></Stop>`` (``<Siprec>`` for
siprec), then the same ``<Redirect>``.

``<Start>``/``<Stop>`` do not block the call, and Twilio follows the
``<Redirect>`` straight after, so the caller hears nothing in between; that
request takes ``next`` and is answered with the next widget's TwiML (the
stream runs on in the background). Properties (Liquid): ``stream_name``,
``stream_url``, ``stream_transport_type``, ``stream_connector`` (also read as
``stream_connector_name``), ``stream_track``, ``stream_parameters``
(``{key, value}`` pairs → ``<Parameter>``). An attribute is emitted only when
its property renders non-empty. Another ``stream_action`` takes ``next`` at
once with ``widgets.NAME.error`` and no TwiML. ``widgets.NAME`` is empty
otherwise (Studio exposes no variables for this widget).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twilio.twiml.voice_response import Siprec, Start, Stop, Stream, VoiceResponse

from shared.flow import State
from shared.messages import Event, WebhookReceived

from ..sprint import Next, Park, Sprint
from .voice import flow_event_url, needs_call, park_twiml

__all__ = ["fork_stream", "resume_fork_stream"]

ACTIONS = ("start", "stop")


def _text(sprint: Sprint, props: Mapping[str, Any], key: str) -> str:
    value = props.get(key)
    return sprint.render(value).strip() if value not in (None, "") else ""


def _stream(sprint: Sprint, props: Mapping[str, Any], action: str) -> Stream | Siprec:
    siprec = _text(sprint, props, "stream_transport_type").lower() == "siprec"
    connector = _text(sprint, props, "stream_connector") or _text(sprint, props, "stream_connector_name")
    attrs = {"name": _text(sprint, props, "stream_name")}
    if action == "start":
        attrs.update(track=_text(sprint, props, "stream_track"), connector_name=connector)
        if not siprec:
            attrs["url"] = _text(sprint, props, "stream_url")
    noun = (Siprec if siprec else Stream)(**{k: v for k, v in attrs.items() if v})
    if action == "start":
        for item in props.get("stream_parameters") or []:
            if isinstance(item, dict) and str(item.get("key", "")):
                noun.parameter(name=sprint.render(item["key"]), value=sprint.render(item.get("value", "")))
    return noun


def fork_stream(sprint: Sprint, widget: State) -> Next | Park:
    stopped = needs_call(sprint, widget)
    if stopped:
        return stopped
    props = widget.properties
    action = _text(sprint, props, "stream_action").lower()
    if action not in ACTIONS:
        return Next("next", {"error": f"stream_action must be start or stop, got {action!r}; nothing was done"})
    verb = Start() if action == "start" else Stop()
    verb.append(_stream(sprint, props, action))
    response = VoiceResponse()
    response.append(verb)
    response.redirect(flow_event_url(sprint, "next"), method="POST")
    return park_twiml(sprint, widget, ("next",), response)


def resume_fork_stream(sprint: Sprint, widget: State, event: Event) -> Next | None:
    if not isinstance(event, WebhookReceived) or event.flow_event != "next":
        return None
    return Next("next", {})
