"""The Studio flow definition model: parse the ``Definition`` JSON Studio exports.

Parsing is strict about shape (what the engine needs to run the flow) and keeps
every widget's ``properties`` as given, so an export round-trips unchanged.
Semantic checks (required properties per widget type, …) live in
``shared.validation``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Condition", "FlowDefinition", "FlowDefinitionError", "State", "Transition", "ValidationIssue", "parse_definition"]


@dataclass(frozen=True, slots=True)
class ValidationIssue:
    """One problem, located like Studio does (``#/states/3/properties/timeout``)."""

    property_path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"property_path": self.property_path, "message": self.message}


class FlowDefinitionError(ValueError):
    """The definition is not a valid Studio flow (Studio error 81022)."""

    code = 81022

    def __init__(self, issues: list[ValidationIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{i.property_path}: {i.message}" for i in issues))


@dataclass(frozen=True, slots=True)
class Condition:
    friendly_name: str
    arguments: tuple[str, ...]
    type: str
    value: str


@dataclass(frozen=True, slots=True)
class Transition:
    event: str
    next: str | None
    conditions: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class State:
    name: str
    type: str
    transitions: tuple[Transition, ...]
    properties: Mapping[str, Any]

    def next_for(self, event: str) -> str | None:
        """The widget the ``event`` transition leads to (``None`` ends the execution)."""
        for transition in self.transitions:
            if transition.event == event:
                return transition.next or None
        return None


@dataclass(frozen=True, slots=True)
class FlowDefinition:
    initial_state: str
    states: Mapping[str, State]
    order: tuple[str, ...]
    flags: Mapping[str, Any]
    description: str
    raw: Mapping[str, Any]

    @property
    def allow_concurrent_calls(self) -> bool:
        return bool(self.flags.get("allow_concurrent_calls", True))

    def state(self, name: str) -> State:
        return self.states[name]


def _str(value: Any) -> bool:
    return isinstance(value, str)


def parse_definition(raw: Any) -> FlowDefinition:
    """Parse a definition dict; raise :class:`FlowDefinitionError` listing every shape problem."""
    issues: list[ValidationIssue] = []
    if not isinstance(raw, dict):
        raise FlowDefinitionError([ValidationIssue("#", "the definition must be a JSON object")])
    initial = raw.get("initial_state")
    if not _str(initial) or not initial:
        issues.append(ValidationIssue("#/initial_state", "required, a non-empty string"))
    flags = raw.get("flags", {})
    if not isinstance(flags, dict):
        issues.append(ValidationIssue("#/flags", "must be an object"))
        flags = {}
    elif "flags" in raw and not isinstance(flags.get("allow_concurrent_calls"), bool):
        issues.append(ValidationIssue("#/flags/allow_concurrent_calls", "required boolean when flags is present"))
    description = raw.get("description", "")
    if not _str(description):
        issues.append(ValidationIssue("#/description", "must be a string"))
        description = ""
    states_raw = raw.get("states")
    if not isinstance(states_raw, list) or not states_raw:
        issues.append(ValidationIssue("#/states", "required, a non-empty array"))
        raise FlowDefinitionError(issues)
    if len(states_raw) > 1000:
        issues.append(ValidationIssue("#/states", f"at most 1000 widgets, got {len(states_raw)}"))

    states: dict[str, State] = {}
    order: list[str] = []
    for i, item in enumerate(states_raw):
        path = f"#/states/{i}"
        if not isinstance(item, dict):
            issues.append(ValidationIssue(path, "each state must be an object"))
            continue
        name, type_ = item.get("name"), item.get("type")
        if not _str(name) or not name:
            issues.append(ValidationIssue(f"{path}/name", "required, a non-empty string"))
            continue
        if not _str(type_) or not type_:
            issues.append(ValidationIssue(f"{path}/type", "required, a non-empty string"))
            continue
        props = item.get("properties", {})
        if not isinstance(props, dict):
            issues.append(ValidationIssue(f"{path}/properties", "must be an object"))
            props = {}
        transitions = _parse_transitions(item.get("transitions", []), path, issues)
        if name in states:
            issues.append(ValidationIssue(f"{path}/name", f"duplicate widget name {name!r}"))
            continue
        states[name] = State(name, type_, transitions, props)
        order.append(name)

    if _str(initial) and initial and states and initial not in states:
        issues.append(ValidationIssue("#/initial_state", f"no widget named {initial!r}"))
    for i, name in enumerate(order):
        for j, transition in enumerate(states[name].transitions):
            if transition.next and transition.next not in states:
                idx = _index_of(states_raw, name)
                issues.append(ValidationIssue(
                    f"#/states/{idx if idx is not None else i}/transitions/{j}/next",
                    f"transition to unknown widget {transition.next!r}",
                ))
    if issues:
        raise FlowDefinitionError(issues)
    return FlowDefinition(str(initial), states, tuple(order), flags, str(description), raw)


def _index_of(states_raw: list[Any], name: str) -> int | None:
    for i, item in enumerate(states_raw):
        if isinstance(item, dict) and item.get("name") == name:
            return i
    return None


def _parse_transitions(raw: Any, path: str, issues: list[ValidationIssue]) -> tuple[Transition, ...]:
    if not isinstance(raw, list):
        issues.append(ValidationIssue(f"{path}/transitions", "must be an array"))
        return ()
    out = []
    for j, item in enumerate(raw):
        tpath = f"{path}/transitions/{j}"
        if not isinstance(item, dict) or not _str(item.get("event")) or not item.get("event"):
            issues.append(ValidationIssue(f"{tpath}/event", "required, a non-empty string"))
            continue
        nxt = item.get("next")
        if nxt is not None and not _str(nxt):
            issues.append(ValidationIssue(f"{tpath}/next", "must be a string"))
            nxt = None
        conditions = []
        for k, cond in enumerate(item.get("conditions") or []):
            cpath = f"{tpath}/conditions/{k}"
            if not isinstance(cond, dict):
                issues.append(ValidationIssue(cpath, "must be an object"))
                continue
            args = cond.get("arguments", [])
            if not isinstance(args, list) or not all(_str(a) for a in args):
                issues.append(ValidationIssue(f"{cpath}/arguments", "must be an array of strings"))
                args = []
            ctype, value = cond.get("type"), cond.get("value", "")
            if not _str(ctype):
                issues.append(ValidationIssue(f"{cpath}/type", "required, a string"))
                continue
            if not _str(value):
                value = "" if value is None else str(value)
            conditions.append(Condition(str(cond.get("friendly_name", "")), tuple(args), str(ctype), str(value)))
        out.append(Transition(item["event"], nxt or None, tuple(conditions)))
    return tuple(out)
