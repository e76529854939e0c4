"""Flow definitions the benchmarks run."""

from __future__ import annotations

from typing import Any

__all__ = ["six_widget_flow", "voice_flow"]


def six_widget_flow(stub_url: str) -> dict[str, Any]:
    """Trigger → Set Variables → Make HTTP Request → Split → Set Variables (match / no match) → end."""
    return {
        "description": "benchmark: 6 widgets, one Make HTTP Request",
        "initial_state": "Trigger",
        "flags": {"allow_concurrent_calls": True},
        "states": [
            {"name": "Trigger", "type": "trigger", "properties": {},
             "transitions": [{"event": "incomingRequest", "next": "prepare"}, {"event": "incomingCall", "next": "prepare"}]},
            {"name": "prepare", "type": "set-variables",
             "properties": {"variables": [{"key": "who", "value": "{{contact.channel.address}}"}]},
             "transitions": [{"event": "next", "next": "lookup"}]},
            {"name": "lookup", "type": "make-http-request",
             "properties": {"method": "GET", "url": stub_url + "/lookup", "content_type": "application/json;charset=utf-8",
                            "parameters": [{"key": "who", "value": "{{flow.variables.who}}"}]},
             "transitions": [{"event": "success", "next": "branch"}, {"event": "failed", "next": "other"}]},
            {"name": "branch", "type": "split-based-on", "properties": {"input": "{{widgets.lookup.parsed.person.name}}"},
             "transitions": [{"event": "noMatch", "next": "other"},
                             {"event": "match", "next": "bob", "conditions": [
                                 {"friendly_name": "bob", "arguments": ["{{widgets.lookup.parsed.person.name}}"],
                                  "type": "equal_to", "value": "Bob"}]}]},
            {"name": "bob", "type": "set-variables", "properties": {"variables": [{"key": "result", "value": "bob"}]},
             "transitions": [{"event": "next"}]},
            {"name": "other", "type": "set-variables", "properties": {"variables": [{"key": "result", "value": "other"}]},
             "transitions": [{"event": "next"}]},
        ],
    }


def voice_flow(stub_url: str | None = None) -> dict[str, Any]:
    """Incoming call → (optional Make HTTP Request) → Say → end."""
    states: list[dict[str, Any]] = [
        {"name": "Trigger", "type": "trigger", "properties": {},
         "transitions": [{"event": "incomingCall", "next": "lookup" if stub_url else "hello"}]},
        {"name": "hello", "type": "say-play", "properties": {"say": "Hello from Switchboard"},
         "transitions": [{"event": "audioComplete"}]},
    ]
    if stub_url:
        states.insert(1, {"name": "lookup", "type": "make-http-request",
                          "properties": {"method": "GET", "url": stub_url + "/lookup",
                                         "content_type": "application/json;charset=utf-8"},
                          "transitions": [{"event": "success", "next": "hello"}, {"event": "failed", "next": "hello"}]})
    return {"initial_state": "Trigger", "flags": {"allow_concurrent_calls": True}, "states": states}
