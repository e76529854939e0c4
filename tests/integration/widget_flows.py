"""Small builders for Studio flow definitions and helpers shared by the widget end-to-end tests."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

TRIGGER = "Trigger"


def definition(first: str | None, *states: dict[str, Any], trigger: str = "incomingRequest") -> dict[str, Any]:
    """A flow whose trigger's ``trigger`` event leads to ``first``."""
    return {
        "initial_state": TRIGGER, "description": "widget test", "flags": {"allow_concurrent_calls": True},
        "states": [{"name": TRIGGER, "type": "trigger", "properties": {"offset": {"x": 0, "y": 0}},
                    "transitions": [{"event": trigger, "next": first}]}, *states],
    }


def w(name: str, type_: str, transitions: dict[str, str | None], **props: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, "properties": props,
            "transitions": [{"event": e, "next": n} for e, n in transitions.items()]}


def split(name: str, input_: str, matches: list[tuple[str, str, str | None]], no_match: str | None) -> dict[str, Any]:
    """Split Based On…: ``matches`` are (operator, value, next) tried in order."""
    transitions: list[dict[str, Any]] = [{"event": "noMatch", "next": no_match}]
    for operator, value, nxt in matches:
        transitions.append({"event": "match", "next": nxt, "conditions": [
            {"friendly_name": f"{operator} {value}", "arguments": [input_], "type": operator, "value": value}]})
    return {"name": name, "type": "split-based-on", "properties": {"input": input_}, "transitions": transitions}


def phone() -> str:
    """A contact number no other test uses."""
    return f"+1555{uuid.uuid4().int % 10**7:07d}"


def path(steps: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(s["name"], s["transitioned_from"], s["transitioned_to"]) for s in steps]


async def context(api: Any, flow_sid: str, sid: str) -> dict[str, Any]:
    code, body = await api.get(f"/v2/Flows/{flow_sid}/Executions/{sid}/Context")
    assert code == 200, body
    return body["context"]  # type: ignore[no-any-return]


async def executions(api: Any, flow_sid: str) -> list[dict[str, Any]]:
    code, body = await api.get(f"/v2/Flows/{flow_sid}/Executions?PageSize=50")
    assert code == 200, body
    return list(body["executions"])


async def only_execution(api: Any, flow_sid: str, ended: bool = True, timeout: float = 30) -> dict[str, Any]:
    """The flow's one execution (once it has ended, unless ``ended`` is false)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await executions(api, flow_sid)
        if len(found) == 1 and (found[0]["status"] == "ended" or not ended):
            return found[0]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no single {'ended ' if ended else ''}execution for {flow_sid}: {found}")
        await asyncio.sleep(0.1)


async def parked_on(api: Any, flow_sid: str, sid: str, widget: str, timeout: float = 20) -> None:
    """Wait until the execution's newest step leads into ``widget`` (it is waiting there)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        steps = await api.steps(flow_sid, sid)
        if steps and steps[-1]["transitioned_to"] == widget:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{sid} did not reach {widget}: {path(steps)}")
        await asyncio.sleep(0.1)
