"""Flow validation (81022): every problem reported with Studio's property paths."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from shared.flow import FlowDefinitionError
from shared.validation import validate_definition
from tests.conftest import CONFORMANCE, FIXTURES, corpus_files

INVALID = CONFORMANCE.parent / "invalid"
WIDGETS = CONFORMANCE.parent / "widgets"


def _files(folder: Path) -> list[Any]:
    return [pytest.param(p, id=p.stem) for p in sorted(folder.glob("*.json"))]


@pytest.mark.parametrize("path", corpus_files(CONFORMANCE) + _files(FIXTURES))
def test_every_real_studio_flow_validates(path: Path) -> None:
    flow = validate_definition(json.loads(path.read_text()))
    assert flow.initial_state in flow.states


@pytest.mark.parametrize("path", corpus_files(INVALID))
def test_a_flow_with_a_widget_type_studio_does_not_have_is_rejected_naming_the_state(path: Path) -> None:
    raw = json.loads(path.read_text())
    with pytest.raises(FlowDefinitionError) as caught:
        validate_definition(raw)
    bad = [i for i, s in enumerate(raw["states"]) if s["type"] in ("twiml-redirect", "end-call")]
    assert [i.property_path for i in caught.value.issues] == [f"#/states/{i}/type" for i in bad]
    assert all("unknown widget type" in i.message for i in caught.value.issues)
    assert caught.value.code == 81022


@pytest.mark.parametrize("path", corpus_files(WIDGETS))
def test_every_single_widget_sample_validates_inside_a_flow(path: Path) -> None:
    widget = json.loads(path.read_text())
    targets = sorted({t["next"] for t in widget["transitions"] if t.get("next")})
    leaves = [{"name": n, "type": "set-variables", "properties": {"variables": []},
               "transitions": [{"event": "next"}]} for n in targets]
    trigger = {"name": "Trigger", "type": "trigger", "properties": {},
               "transitions": [{"event": "incomingRequest", "next": widget["name"]}]}
    validate_definition({"initial_state": "Trigger", "flags": {"allow_concurrent_calls": True},
                         "states": [trigger, widget, *leaves]})


def flow(*states: dict[str, Any]) -> dict[str, Any]:
    trigger = {"name": "Trigger", "type": "trigger", "properties": {},
               "transitions": [{"event": "incomingRequest", "next": states[0]["name"]}]}
    return {"initial_state": "Trigger", "flags": {"allow_concurrent_calls": True}, "states": [trigger, *states]}


def widget(type_: str, events: tuple[str, ...] = (), **props: Any) -> dict[str, Any]:
    return {"name": "w", "type": type_, "properties": props, "transitions": [{"event": e} for e in events]}


HTTP = {"url": "https://x.test/a"}
BAD_CASES = [
    ("an unknown widget type", widget("twiml-redirect", url="https://x"),
     "#/states/1/type", "unknown widget type 'twiml-redirect'"),
    ("Make HTTP Request without url", widget("make-http-request", ("success", "failed"), method="GET"),
     "#/states/1/properties/url", "required property 'url' is missing"),
    ("Run Function without url", widget("run-function", ("success", "fail")),
     "#/states/1/properties/url", "required property 'url' is missing"),
    ("TwiML Redirect without url", widget("add-twiml-redirect", ("return",)),
     "#/states/1/properties/url", "required property 'url' is missing"),
    ("Split Based On without input", widget("split-based-on", ("noMatch",)),
     "#/states/1/properties/input", "required property 'input' is missing"),
    ("Send Message without body", widget("send-message", ("sent",), to="+1"),
     "#/states/1/properties/body", "required property 'body' is missing"),
    ("a content template without content_sid", widget("send-message", ("sent",), message_type="content_template"),
     "#/states/1/properties/content_sid", "required for a content template message"),
    ("Say/Play with nothing to say", widget("say-play", ("audioComplete",), voice="man"),
     "#/states/1/properties/say", "one of 'say', 'play', 'digits' is required"),
    ("Run Subflow without flow_revision", widget("run-subflow", ("completed",), flow_sid="FW1"),
     "#/states/1/properties/flow_revision", "required property 'flow_revision' is missing"),
    ("add-twiml-redirect.timeout as an integer", widget("add-twiml-redirect", ("return",), url="https://x", timeout=100),
     "#/states/1/properties/timeout", 'must be a string of seconds (e.g. "14400"), got integer'),
    ("add-twiml-redirect.timeout above 14400", widget("add-twiml-redirect", ("return",), url="https://x", timeout="20000"),
     "#/states/1/properties/timeout", "from 0 to 14400, got '20000'"),
    ("send-and-wait-for-reply.timeout as a boolean", widget("send-and-wait-for-reply", ("timeout",), body="b", timeout=True),
     "#/states/1/properties/timeout", "must be a string of seconds"),
    ("send-and-wait-for-reply.timeout as words", widget("send-and-wait-for-reply", ("timeout",), body="b", timeout="soon"),
     "#/states/1/properties/timeout", "must be a whole number of seconds, got 'soon'"),
    ("gather-input-on-call.timeout as a string", widget("gather-input-on-call", ("timeout",), timeout="5"),
     "#/states/1/properties/timeout", "must be an integer, got string"),
    ("gather-input-on-call.number_of_digits as a string", widget("gather-input-on-call", (), number_of_digits="4"),
     "#/states/1/properties/number_of_digits", "must be an integer, got string"),
    ("gather-input-on-call.stop_gather as a string", widget("gather-input-on-call", (), stop_gather="true"),
     "#/states/1/properties/stop_gather", "must be a boolean (true or false), got string"),
    ("gather-input-on-call.profanity_filter as a boolean", widget("gather-input-on-call", (), profanity_filter=True),
     "#/states/1/properties/profanity_filter", "must be a string, got boolean"),
    ("say-play.loop as a string", widget("say-play", ("audioComplete",), say="hi", loop="2"),
     "#/states/1/properties/loop", "must be an integer, got string"),
    ("make-http-request.add_twilio_auth as a string", widget("make-http-request", (), **HTTP, add_twilio_auth="true"),
     "#/states/1/properties/add_twilio_auth", "must be a boolean (true or false), got string"),
    ("make-http-request.method other than GET or POST", widget("make-http-request", (), **HTTP, method="PUT"),
     "#/states/1/properties/method", "must be one of GET, POST, got 'PUT'"),
    ("parameters not an array", widget("make-http-request", (), **HTTP, parameters={"a": "b"}),
     "#/states/1/properties/parameters", "must be an array of {key, value} objects, got object"),
    ("a parameter without a key", widget("run-function", (), **HTTP, parameters=[{"value": "b"}]),
     "#/states/1/properties/parameters", "item 0 must be an object with a non-empty string key"),
    ("a Set Variables pair that is not an object", widget("set-variables", ("next",), variables=["x"]),
     "#/states/1/properties/variables", "item 0 must be an object with a non-empty string key"),
    ("connect-call-to.time_limit as an integer", widget("connect-call-to", (), noun="number", time_limit=600),
     "#/states/1/properties/time_limit", "must be a string, got integer"),
    ("record-call.record_call as a string", widget("record-call", (), record_call="true"),
     "#/states/1/properties/record_call", "must be a boolean (true or false), got string"),
    ("send-to-flex.priority as an integer", widget("send-to-flex", (), workflow="WW1", channel="TC1", priority=1),
     "#/states/1/properties/priority", "must be a string, got integer"),
    ("an event the widget does not have", widget("make-http-request", ("success", "fail"), **HTTP),
     "#/states/1/transitions/1/event", "'fail' is not an event of make-http-request (failed, success)"),
    ("an operator Studio does not have",
     {"name": "w", "type": "split-based-on", "properties": {"input": "x"}, "transitions": [
         {"event": "match", "conditions": [{"friendly_name": "f", "arguments": [], "type": "sounds_like", "value": "x"}]}]},
     "#/states/1/transitions/0/conditions/0/type", "unknown operator 'sounds_like'"),
    ("conditions on a widget other than a split",
     {"name": "w", "type": "set-variables", "properties": {}, "transitions": [
         {"event": "next", "conditions": [{"friendly_name": "f", "arguments": [], "type": "equal_to", "value": "x"}]}]},
     "#/states/1/transitions/0/conditions", "only Split Based On… transitions have conditions"),
]


@pytest.mark.parametrize("state,path,message", [pytest.param(s, p, m, id=i) for i, s, p, m in BAD_CASES])
def test_a_bad_widget_is_reported_at_its_property_path(state: dict[str, Any], path: str, message: str) -> None:
    with pytest.raises(FlowDefinitionError) as caught:
        validate_definition(flow(state))
    assert [(i.property_path, message in i.message) for i in caught.value.issues] == [(path, True)], \
        [i.as_dict() for i in caught.value.issues]


def test_send_and_wait_for_reply_timeout_may_be_a_whole_number_as_a_real_console_export_writes_it() -> None:
    validate_definition(flow(widget("send-and-wait-for-reply", ("timeout",), body="b", timeout=3600)))
    validate_definition(flow(widget("send-and-wait-for-reply", ("timeout",), body="b", timeout="3600")))


def test_liquid_in_a_checked_string_property_is_accepted() -> None:
    validate_definition(flow(widget("add-twiml-redirect", ("return",), url="https://x", timeout="{{flow.data.t}}")))
    validate_definition(flow(widget("make-http-request", (), **HTTP, method="{{flow.data.m}}")))


def test_every_problem_is_reported_at_once_in_path_order() -> None:
    raw = flow(widget("make-http-request", ("success",), add_twilio_auth="yes"),
               {"name": "w", "type": "no-such-widget", "properties": {}, "transitions": [{"event": "x", "next": "nowhere"}]})
    with pytest.raises(FlowDefinitionError) as caught:
        validate_definition(raw)
    assert [i.property_path for i in caught.value.issues] == [
        "#/states/1/properties/add_twilio_auth",
        "#/states/1/properties/url",
        "#/states/2/name",
        "#/states/2/type",
    ]


def test_shape_problems_of_the_parser_are_kept() -> None:
    raw = flow(widget("set-variables", ("next",)))
    raw["states"][1]["transitions"][0]["next"] = "ghost"
    raw["states"].append(copy.deepcopy(raw["states"][1]))
    del raw["initial_state"]
    with pytest.raises(FlowDefinitionError) as caught:
        validate_definition(raw)
    messages = {i.property_path: i.message for i in caught.value.issues}
    assert messages["#/initial_state"] == "required, a non-empty string"
    assert messages["#/states/2/name"] == "duplicate widget name 'w'"
    assert messages["#/states/1/transitions/0/next"] == "transition to unknown widget 'ghost'"


def test_a_definition_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(FlowDefinitionError) as caught:
        validate_definition(["not", "a", "flow"])
    assert caught.value.issues[0].property_path == "#"
