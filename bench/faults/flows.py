"""The flows the fault suite runs, one per kind of work, and the steps each must take.

Every flow's path is fixed by its definition and the simulated far ends (the recorder always answers 200,
the caller presses 1, the contact replies or stays silent), so any other path is a fault's doing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CHANNEL", "KINDS", "Kind", "ROUNDS"]

CHANNEL = "+15559990000"
ROUNDS = 2
Path = list[tuple[str, str, str]]
COUNTER = "{% if flow.variables.count %}{{flow.variables.count | plus: 1}}{% else %}1{% endif %}"


def _flow(first: str, *states: dict[str, Any], trigger: str = "incomingRequest") -> dict[str, Any]:
    return {"initial_state": "Trigger", "description": "fault suite", "flags": {"allow_concurrent_calls": True},
            "states": [{"name": "Trigger", "type": "trigger", "properties": {"offset": {"x": 0, "y": 0}},
                        "transitions": [{"event": trigger, "next": first}]}, *states]}


def _w(name: str, type_: str, transitions: dict[str, str | None], **props: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "properties": props,
            "transitions": [{"event": e, "next": n} for e, n in transitions.items()]}


def _split(name: str, input_: str, value: str, match: str | None, no_match: str | None) -> dict[str, Any]:
    return {"name": name, "type": "split-based-on", "properties": {"input": input_}, "transitions": [
        {"event": "noMatch", "next": no_match},
        {"event": "match", "next": match, "conditions": [
            {"friendly_name": value, "arguments": [input_], "type": "equal_to", "value": value}]}]}


class Kind:
    """One kind of execution: its flow(s), how it starts, and the path it must take."""

    def __init__(self, name: str, weight: int, flow: dict[str, Any], path: Path,
                 messages: tuple[str, ...] = (), requests: int = 0, subflow: dict[str, Any] | None = None) -> None:
        self.name, self.weight, self.flow, self.path = name, weight, flow, path
        self.messages = messages  # SMS bodies the contact must receive, in order, each once
        self.requests = requests  # distinct HTTP requests the recorder must see (n = 1..requests)
        self.subflow = subflow


HTTP = Kind("http", 30, _flow(
    "count",
    _w("count", "set-variables", {"next": "call"}, variables=[{"key": "count", "value": COUNTER}]),
    _w("call", "make-http-request", {"success": "check", "failed": None},
       url="{{flow.data.base}}/work?n={{flow.variables.count}}&e={{flow.sid}}", method="GET"),
    _split("check", "{{flow.variables.count}}", str(ROUNDS), None, "count")),
    [("incomingRequest", "Trigger", "count"),
     *[s for _ in range(ROUNDS - 1) for s in (("next", "count", "call"), ("success", "call", "check"),
                                              ("noMatch", "check", "count"))],
     ("next", "count", "call"), ("success", "call", "check"), ("match", "check", "Ended")],
    requests=ROUNDS)

SUB = _flow("call", _w("call", "make-http-request", {"success": "mark", "failed": None},
                       url="{{trigger.parent.parameters.base}}/work?n=1&e={{trigger.parent.execution_sid}}",
                       method="GET"),
            _w("mark", "set-variables", {"next": None}, variables=[{"key": "sub", "value": "done"}]),
            trigger="incomingParent")

SUBFLOW = Kind("subflow", 15, _flow(
    "sub",
    {"name": "sub", "type": "run-subflow",
     "properties": {"flow_sid": "{SUB}", "flow_revision": "LatestPublished",
                    "parameters": [{"key": "base", "value": "{{flow.data.base}}"}]},
     "transitions": [{"event": "completed", "next": "after"}, {"event": "failed", "next": None}]},
    _w("after", "set-variables", {"next": None}, variables=[{"key": "result", "value": "{{widgets.sub.sub}}"}])),
    [], requests=1, subflow=SUB)  # path: taken from a fault-free run (Studio's subflow steps are ours to pin)

CALL_RETURN = Kind("call_return", 20, _flow(
    "menu",
    _w("menu", "gather-input-on-call", {"keypress": "check", "speech": None, "timeout": None},
       say="Press 1", number_of_digits=1, timeout=5),
    _split("check", "{{widgets.menu.Digits}}", "1", "away", None),
    _w("away", "add-twiml-redirect", {"return": "bye", "timeout": None, "fail": None},
       url="{{flow.data.app}}/app?flow={{flow.flow_sid}}", method="POST", timeout="14400"),
    _w("bye", "say-play", {"audioComplete": None}, say="Bye {{widgets.away.foo}}", loop=1),
    trigger="incomingCall"),
    [("incomingCall", "Trigger", "menu"), ("keypress", "menu", "check"), ("match", "check", "away"),
     ("return", "away", "bye"), ("audioComplete", "bye", "Ended")])

CALL_TIMEOUT = Kind("call_timeout", 10, _flow(
    "away",
    _w("away", "add-twiml-redirect", {"return": None, "timeout": "note", "fail": None},
       url="{{flow.data.app}}/hold", method="POST", timeout="2"),
    _w("note", "set-variables", {"next": None}, variables=[{"key": "timed_out", "value": "yes"}]),
    trigger="incomingCall"),
    [("incomingCall", "Trigger", "away"), ("timeout", "away", "note"), ("next", "note", "Ended")])


def _ask(timeout: str) -> dict[str, Any]:
    return _flow(
        "ask",
        _w("ask", "send-and-wait-for-reply", {"incomingMessage": "echo", "timeout": "late", "deliveryFailure": None},
           body="What is your name?", timeout=timeout, **{"from": "{{flow.channel.address}}"}),
        _w("echo", "send-message", {"sent": None, "failed": None},
           body="Nice to meet you, {{widgets.ask.inbound.Body}}", to="{{contact.channel.address}}"),
        _w("late", "send-message", {"sent": None, "failed": None}, body="Too late."))


SMS_REPLY = Kind("sms_reply", 15, _ask("3600"),
                 [("incomingRequest", "Trigger", "ask"), ("incomingMessage", "ask", "echo"), ("sent", "echo", "Ended")],
                 messages=("What is your name?", "Nice to meet you, Bob"))
SMS_TIMEOUT = Kind("sms_timeout", 10, _ask("3"),
                   [("incomingRequest", "Trigger", "ask"), ("timeout", "ask", "late"), ("sent", "late", "Ended")],
                   messages=("What is your name?", "Too late."))

KINDS = (HTTP, SUBFLOW, CALL_RETURN, CALL_TIMEOUT, SMS_REPLY, SMS_TIMEOUT)
