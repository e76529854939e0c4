"""Flow validation: what ``POST /v2/Flows/Validate`` and flow create/update enforce (Studio error 81022).

``validate_definition`` reports *every* problem at once, each located like
Studio does (``#/states/3/properties/timeout``):

* the shape rules of ``shared.flow.parse_definition`` (``initial_state``,
  ``states``, duplicate names, transitions to unknown widgets, …);
* unknown widget types (Studio's schema enum, e.g. ``twiml-redirect`` or
  ``end-call`` do not exist);
* transition events a widget type does not have (Studio allows no custom
  events), and Split Based On… operators that do not exist;
* required properties per widget type (``url`` of Make HTTP Request, Run
  Function and TwiML Redirect, ``input`` of Split Based On…, ``body`` of the
  message widgets, …);
* property types (studio.md §1.5): numbers Studio stores as strings
  (``add-twiml-redirect.timeout``, ``send-to-flex.priority``…), real booleans
  (``add_twilio_auth``, ``stop_gather``…), integers (``gather-input-on-call.timeout``,
  ``loop``…), and arrays of ``{key, value}`` pairs.

Where the evidence disagrees with secondary sources, real Console exports win:
``send-and-wait-for-reply.timeout`` is a string in Studio's model, but a
published Console export (conformance flow 09) writes the integer ``3600``, so
a whole number is accepted there too; any other type is rejected.
Make HTTP Request's ``method`` and ``content_type`` have defaults (GET, form)
and are therefore not required.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shared.flow import FlowDefinition, FlowDefinitionError, ValidationIssue, parse_definition

__all__ = ["EVENTS", "OPERATORS", "WIDGET_TYPES", "validate_definition"]

#: Studio's widget ``type`` enum (2019-09 schema) plus widgets documented since.
WIDGET_TYPES = frozenset({
    "trigger", "add-member-to-chat-channel", "add-twiml-redirect", "capture-payments", "connect-call-to",
    "create-chat-channel", "create-task", "enqueue-call", "fork-stream", "gather-input-on-call",
    "make-http-request", "make-outgoing-call-v1", "make-outgoing-call-v2", "record-call", "record-voicemail",
    "run-function", "run-function-v2", "say-play", "send-and-wait-for-reply", "send-message", "send-to-flex",
    "set-variables", "split-based-on", "run-subflow", "understand", "update-sync-object",
    "connect-virtual-agent", "connect-virtual-agent-v2", "start-conversation", "resume-conversation",
    "run-conversation-relay", "send-to-auto-pilot",
})

#: Transition events per widget type, where they are known (studio.md §1.4).
EVENTS: Mapping[str, frozenset[str]] = {
    "trigger": frozenset({"incomingMessage", "incomingCall", "incomingConversationMessage", "incomingRequest",
                          "incomingParent"}),
    "split-based-on": frozenset({"match", "noMatch"}),
    "set-variables": frozenset({"next"}),
    "make-http-request": frozenset({"success", "failed"}),
    "run-function": frozenset({"success", "fail"}),
    "add-twiml-redirect": frozenset({"return", "timeout", "fail"}),
    "send-message": frozenset({"sent", "failed"}),
    "send-and-wait-for-reply": frozenset({"incomingMessage", "timeout", "deliveryFailure"}),
    "gather-input-on-call": frozenset({"keypress", "speech", "timeout"}),
    "say-play": frozenset({"audioComplete"}),
    "connect-call-to": frozenset({"callCompleted", "hangup"}),
    "record-voicemail": frozenset({"recordingComplete", "noAudio", "hangup"}),
    "enqueue-call": frozenset({"callComplete", "failedToEnqueue", "callFailure"}),
    "send-to-flex": frozenset({"callComplete", "failedToEnqueue", "callFailure"}),
    "fork-stream": frozenset({"next"}),
    "run-subflow": frozenset({"completed", "failed"}),
    "make-outgoing-call-v2": frozenset({"answered", "busy", "noAnswer", "failed"}),
    "make-outgoing-call-v1": frozenset({"answered", "busy", "noAnswer", "failed", "answeredByMachine", "hangup"}),
    "record-call": frozenset({"success", "failed"}),
    "capture-payments": frozenset({"success", "maxFailedAttempts", "providerError", "payInterrupted", "hangup",
                                   "validationError"}),
    "connect-virtual-agent": frozenset({"return", "hangup"}),
    "connect-virtual-agent-v2": frozenset({"completed", "live-agent-handoff", "hangup", "failed", "paused",
                                           "timeout"}),
}

OPERATORS = frozenset({
    "equal_to", "not_equal_to", "matches_any_of", "does_not_match_any_of", "is_blank", "is_not_blank", "regex",
    "contains", "does_not_contain", "starts_with", "does_not_start_with", "less_than", "greater_than",
    "is_before_time", "is_after_time", "is_before_date", "is_after_date",
})

#: Required properties: a name, or a tuple meaning "at least one of these".
REQUIRED: Mapping[str, tuple[str | tuple[str, ...], ...]] = {
    "split-based-on": ("input",),
    "make-http-request": ("url",),
    "run-function": ("url",),
    "add-twiml-redirect": ("url",),
    "say-play": (("say", "play", "digits"),),
    "connect-call-to": ("noun",),
    "enqueue-call": (("queue_name", "workflow_sid"),),
    "send-to-flex": ("workflow", "channel"),
    "run-subflow": ("flow_sid", "flow_revision"),
    "record-call": ("record_call",),
    "fork-stream": ("stream_action",),
    "make-outgoing-call-v2": ("from", "to"),
    "make-outgoing-call-v1": ("from", "to"),
    "connect-virtual-agent": ("connector",),
}

# -- property type checks: each returns an error message, or None when the value is fine ------------


def _string(value: Any) -> str | None:
    return None if isinstance(value, str) else f"must be a string, got {_kind(value)}"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be a boolean (true or false), got {_kind(value)}"


def _integer(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return f"must be an integer, got {_kind(value)}"


def _seconds_string(low: int, high: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f'must be a string of seconds (e.g. "{high}"), got {_kind(value)}'
        if "{{" in value or "{%" in value:
            return None  # Liquid: checked when it runs
        if not value.strip().isdigit() or not low <= int(value) <= high:
            return f"must be a whole number of seconds from {low} to {high}, got {value!r}"
        return None
    return check


def _seconds_string_or_integer(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None if value >= 0 else f"must not be negative, got {value}"
    if isinstance(value, str):
        if "{{" in value or "{%" in value or value.strip().isdigit():
            return None
        return f"must be a whole number of seconds, got {value!r}"
    return f'must be a string of seconds (e.g. "3600"), got {_kind(value)}'


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if not isinstance(value, str):
            return f"must be one of {', '.join(choices)}, got {_kind(value)}"
        if "{{" in value or value.strip().upper() in choices:
            return None
        return f"must be one of {', '.join(choices)}, got {value!r}"
    return check


def _pairs(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"must be an array of {{key, value}} objects, got {_kind(value)}"
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not item["key"]:
            return f"item {index} must be an object with a non-empty string key"
        if not isinstance(item.get("value", ""), str | int | float | bool):
            return f"item {index} has a value that is not a string"
    return None


_STRINGS = ("body", "from", "to", "media_url", "url", "input")
TYPES: Mapping[str, Mapping[str, Callable[[Any], str | None]]] = {
    "split-based-on": {"input": _string},
    "set-variables": {"variables": _pairs},
    "make-http-request": {"url": _string, "method": _one_of("GET", "POST"), "content_type": _string,
                          "body": _string, "parameters": _pairs, "add_twilio_auth": _boolean},
    "run-function": {"url": _string, "parameters": _pairs},
    "add-twiml-redirect": {"url": _string, "method": _one_of("GET", "POST"),
                           "timeout": _seconds_string(0, 14400)},
    "send-message": {"body": _string, "from": _string, "to": _string, "media_url": _string,
                     "shorten_urls": _boolean, "content_variables": _pairs},
    "send-and-wait-for-reply": {"body": _string, "from": _string, "media_url": _string,
                                "timeout": _seconds_string_or_integer, "content_variables": _pairs},
    "gather-input-on-call": {"timeout": _integer, "number_of_digits": _integer, "loop": _integer,
                             "stop_gather": _boolean, "profanity_filter": _string, "speech_timeout": _string,
                             "finish_on_key": _string},
    "say-play": {"loop": _integer},
    "connect-call-to": {"timeout": _integer, "time_limit": _string, "record": _boolean},
    "record-voicemail": {"max_length": _integer, "timeout": _integer, "trim": _string, "play_beep": _string,
                         "transcribe": _boolean},
    "record-call": {"record_call": _boolean, "trim": _string},
    "send-to-flex": {"priority": _string, "timeout": _string},
    "make-outgoing-call-v2": {"trim": _string, "machine_detection_timeout": _string, "timeout": _integer,
                              "record": _boolean, "detect_answering_machine": _boolean},
    "make-outgoing-call-v1": {"trim": _string, "machine_detection_timeout": _string, "timeout": _integer,
                              "record": _boolean, "detect_answering_machine": _boolean},
    "fork-stream": {"stream_action": _one_of("START", "STOP"), "stream_parameters": _pairs},
    "capture-payments": {"security_code": _boolean, "postal_code": _string, "max_attempts": _integer,
                         "timeout": _integer, "min_postal_code_length": _integer},
    "run-subflow": {"flow_sid": _string, "flow_revision": _string, "parameters": _pairs},
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _missing(props: Mapping[str, Any], name: str) -> bool:
    return props.get(name) is None


def _check_state(index: int, state: dict[str, Any], issues: list[ValidationIssue]) -> None:
    path = f"#/states/{index}"
    type_ = state.get("type")
    if not isinstance(type_, str) or not type_:
        return  # parse_definition reports it
    if type_ not in WIDGET_TYPES:
        issues.append(ValidationIssue(f"{path}/type", f"unknown widget type {type_!r}"))
        return
    props = state.get("properties")
    props = props if isinstance(props, dict) else {}
    if type_ in ("send-message", "send-and-wait-for-reply"):
        template = props.get("message_type") == "content_template"
        if template and _missing(props, "content_sid"):
            issues.append(ValidationIssue(f"{path}/properties/content_sid",
                                          "required for a content template message"))
        elif not template and _missing(props, "body") and _missing(props, "media_url"):
            issues.append(ValidationIssue(f"{path}/properties/body", "required property 'body' is missing"))
    for required in REQUIRED.get(type_, ()):
        if isinstance(required, tuple):
            if all(_missing(props, name) for name in required):
                issues.append(ValidationIssue(f"{path}/properties/{required[0]}",
                                              f"one of {', '.join(map(repr, required))} is required"))
        elif _missing(props, required):
            issues.append(ValidationIssue(f"{path}/properties/{required}",
                                          f"required property {required!r} is missing"))
    for name, check in TYPES.get(type_, {}).items():
        if name in props and props[name] is not None:
            problem = check(props[name])
            if problem:
                issues.append(ValidationIssue(f"{path}/properties/{name}", problem))
    transitions = state.get("transitions")
    allowed = EVENTS.get(type_)
    for j, transition in enumerate(transitions if isinstance(transitions, list) else []):
        if not isinstance(transition, dict):
            continue
        event = transition.get("event")
        if allowed is not None and isinstance(event, str) and event and event not in allowed:
            issues.append(ValidationIssue(
                f"{path}/transitions/{j}/event",
                f"{event!r} is not an event of {type_} ({', '.join(sorted(allowed))})"))
        conditions = transition.get("conditions")
        if conditions and type_ != "split-based-on":
            issues.append(ValidationIssue(f"{path}/transitions/{j}/conditions",
                                          "only Split Based On… transitions have conditions"))
            continue
        for k, condition in enumerate(conditions if isinstance(conditions, list) else []):
            operator = condition.get("type") if isinstance(condition, dict) else None
            if isinstance(operator, str) and operator not in OPERATORS:
                issues.append(ValidationIssue(f"{path}/transitions/{j}/conditions/{k}/type",
                                              f"unknown operator {operator!r}"))


def validate_definition(raw: Any) -> FlowDefinition:
    """Parse and check a definition; raise ``FlowDefinitionError`` listing every problem with its path."""
    issues: list[ValidationIssue] = []
    states = raw.get("states") if isinstance(raw, dict) else None
    for index, state in enumerate(states if isinstance(states, list) else []):
        if isinstance(state, dict):
            _check_state(index, state, issues)
    try:
        flow = parse_definition(raw)
    except FlowDefinitionError as exc:
        raise FlowDefinitionError(_merge(exc.issues, issues)) from None
    if issues:
        raise FlowDefinitionError(_merge([], issues))
    return flow


def _merge(first: list[ValidationIssue], second: list[ValidationIssue]) -> list[ValidationIssue]:
    """Both lists, each issue once, ordered by path so a state's problems stay together."""
    seen: dict[tuple[str, str], ValidationIssue] = {}
    for issue in [*first, *second]:
        seen.setdefault((issue.property_path, issue.message), issue)
    return sorted(seen.values(), key=lambda i: _path_key(i.property_path))


def _path_key(path: str) -> tuple[Any, ...]:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.split("/"))
