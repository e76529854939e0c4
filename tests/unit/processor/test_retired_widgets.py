"""Widgets of retired Twilio products validate, and an execution that reaches one ends with 81002 saying so."""

from __future__ import annotations

import pytest

from shared.validation import validate_definition

from .harness import Harness, flow_of
from .voice_helpers import widget

RETIRED = [("understand", "Autopilot"), ("send-to-auto-pilot", "Autopilot"),
           ("create-chat-channel", "Programmable Chat"), ("add-member-to-chat-channel", "Programmable Chat")]


@pytest.mark.parametrize("type_,product", RETIRED)
def test_a_retired_widget_validates_but_ends_the_execution_with_81002_naming_the_product(type_: str,
                                                                                         product: str) -> None:
    state = widget("old", type_, {})
    validate_definition({"initial_state": "Trigger", "flags": {"allow_concurrent_calls": True}, "states": [
        {"name": "Trigger", "type": "trigger", "properties": {}, "transitions": [{"event": "incomingRequest",
                                                                                 "next": "old"}]}, state]})
    h = Harness(flow_of(state))
    h.start()
    assert h.path() == [("incomingRequest", "Trigger", "old"), ("81002", "old", "Ended")]
    error = h.context["error"]
    assert error["code"] == 81002 and f"belongs to {product}, which Twilio has retired" in error["message"]
    assert h.record().status == "ended"


def test_a_widget_not_built_yet_still_says_so() -> None:
    h = Harness(flow_of(widget("sync", "update-sync-object", {})))
    h.start()
    assert "not supported by Switchboard yet" in h.context["error"]["message"]
