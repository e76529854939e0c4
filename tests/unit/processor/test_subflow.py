"""Run Subflow: a subflow runs inside its parent's execution and hands its variables back.

The harness's catalog holds the parent (``FLOW_SID``, revision 1) and subflows' revisions with their
status, as the processor's flow catalog does; ``latest_revision`` answers from it.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.ingress.resources import Urls, step_json
from services.processor.sprint import MAX_STEPS, MAX_STREAK, Env
from services.processor.state import ExecutionState, decode_route_record, encode_route_record
from shared.flow import FlowDefinition, parse_definition
from shared.messages import (
    CancelTimer,
    EndRequested,
    ScheduleTimer,
    StepRecord,
    WebhookReceived,
    decode,
    encode,
    history_batch,
)
from shared.settings import Settings

from .harness import CHANNEL, CONTACT, FLOW_SID, ROUTE, Harness, flow_of
from .test_message_widgets import message_resource

SUB = "FW" + "5" * 32
MISSING = "FW" + "9" * 32
SID = "FN" + "1" * 32
API = "http://127.0.0.1:9000"


# -- builders ----------------------------------------------------------------------------------------


def subflow(*states: dict[str, Any]) -> FlowDefinition:
    """A subflow: its trigger goes on only on ``incomingParent``, to the first state given."""
    trigger = {"name": "Trigger", "type": "trigger", "properties": {},
               "transitions": [{"event": "incomingParent", "next": states[0]["name"] if states else None},
                               {"event": "incomingRequest"}]}
    return parse_definition({"initial_state": "Trigger", "flags": {"allow_concurrent_calls": True},
                             "states": [trigger, *states]})


def run_subflow(name: str = "sub", revision: Any = "LatestPublished", params: list[dict[str, Any]] | None = None,
                completed: str | None = "after", failed: str | None = "oops", flow_sid: str = SUB,
                **props: Any) -> dict[str, Any]:
    return {"name": name, "type": "run-subflow",
            "properties": {"flow_sid": flow_sid, "flow_revision": revision, "parameters": params or [], **props},
            "transitions": [{"event": "completed", "next": completed}, {"event": "failed", "next": failed}]}


def set_vars(name: str, next_: str | None = None, **variables: str) -> dict[str, Any]:
    return {"name": name, "type": "set-variables",
            "properties": {"variables": [{"key": k, "value": v} for k, v in variables.items()]},
            "transitions": [{"event": "next", "next": next_}]}


def http(name: str, url: str, success: str | None = None, failed: str | None = None) -> dict[str, Any]:
    return {"name": name, "type": "make-http-request", "properties": {"method": "GET", "url": url},
            "transitions": [{"event": "success", "next": success}, {"event": "failed", "next": failed}]}


def parent(*states: dict[str, Any]) -> FlowDefinition:
    """Trigger → ``states[0]`` …, plus ``after`` (completed) and ``oops`` (failed) leaves."""
    return flow_of(*states, set_vars("after", done="yes"), set_vars("oops", failed="yes"))


class Catalog(Harness):
    """A harness whose catalog holds the parent and ``subflows`` = {sid: {revision: (definition, status)}}."""

    def __init__(self, parent_flow: FlowDefinition, subflows: dict[str, dict[int, tuple[FlowDefinition, str]]],
                 settings: Settings | None = None) -> None:
        super().__init__(parent_flow, settings)
        self.catalog = {FLOW_SID: {1: (parent_flow, "published")}, **subflows}

    def env(self, offset: int = -1) -> Env:
        def flows(sid: str, revision: int) -> FlowDefinition | None:
            entry = self.catalog.get(sid, {}).get(revision)
            return entry[0] if entry else None

        def latest(sid: str, published: bool) -> int | None:
            revisions = [r for r, (_, status) in self.catalog.get(sid, {}).items()
                         if status == "published" or not published]
            return max(revisions) if revisions else None
        return Env(now=self.now, settings=self.settings, flows=flows, offset=offset, committed=self.committed,
                   latest_revision=latest)

    def widgets(self) -> dict[str, Any]:
        return self.context["widgets"]  # type: ignore[no-any-return]

    def stored(self) -> ExecutionState:
        return self.executions[SID]


def one_subflow(*states: dict[str, Any]) -> dict[str, dict[int, tuple[FlowDefinition, str]]]:
    return {SUB: {1: (subflow(*states), "published")}}


def call_webhook(flow_event: str = "", sid: str = "FN" + "c" * 32, reply: str = "w1") -> WebhookReceived:
    params = {"CallSid": "CA1", "From": CONTACT, "To": CHANNEL, "CallStatus": "in-progress", "Direction": "inbound",
              "AccountSid": Settings().account_sid}
    return WebhookReceived(flow_sid=FLOW_SID, revision=1, route=ROUTE, channel="voice", params=params,
                           flow_event=flow_event, call_sid="CA1", new_execution_sid=sid, received_at=1.0,
                           reply_id=reply, reply_partition=0)


# -- parameters in, variables out ---------------------------------------------------------------------

PARAMETER_CASES = [
    ("Liquid renders against the parent's context", {"key": "name", "value": "{{flow.data.name}}"}, "Ann"),
    ("a value stays text, also when it reads as a number", {"key": "zip", "value": "007"}, "007"),
    ("a number without parse_as_json is text", {"key": "n", "value": "{{flow.data.n}}"}, "2"),
    ("parse_as_json turns a JSON object into an object",
     {"key": "o", "value": '{"a": {{flow.data.n}}}', "parse_as_json": True}, {"a": 2}),
    ("parse_as_json turns an object printed by Liquid back into that object",
     {"key": "d", "value": "{{flow.data}}", "parse_as_json": True}, {"name": "Ann", "n": 2}),
    ("parse_as_json leaves text that is not JSON as text", {"key": "t", "value": "x{", "parse_as_json": True}, "x{"),
    ("an undefined variable renders empty", {"key": "e", "value": "{{flow.data.missing}}"}, ""),
]


@pytest.mark.parametrize("pair,expected", [pytest.param(p, e, id=i) for i, p, e in PARAMETER_CASES])
def test_parameters_are_rendered_into_trigger_parent_parameters(pair: dict[str, Any], expected: Any) -> None:
    h = Catalog(parent(run_subflow(params=[pair])), one_subflow(http("wait", "http://svc/x")))
    h.start({"name": "Ann", "n": 2})
    assert h.stored().context["trigger"]["parent"]["parameters"] == {pair["key"]: expected}


def test_the_subflow_has_its_own_flow_and_widgets_and_trigger_parent_names_the_parent() -> None:
    h = Catalog(parent(run_subflow(params=[{"key": "name", "value": "{{flow.data.name}}"}])),
                one_subflow(http("call", "http://svc/{{trigger.parent.parameters.name}}?v={{flow.variables.a}}")))
    [request] = h.requests(h.start({"name": "Ann"}))
    assert request.url == "http://svc/Ann?v="  # the parent's flow.variables are not the subflow's
    context = h.stored().context
    parent_info = context["trigger"]["parent"]
    assert {k: v for k, v in parent_info.items() if k != "step_sid"} == {
        "parameters": {"name": "Ann"}, "execution_sid": SID, "flow_sid": FLOW_SID}
    assert context["flow"] == {"flow_sid": SUB, "sid": SID, "channel": {"address": CHANNEL}, "data": {},
                               "variables": {}}
    assert context["widgets"] == {} and context["contact"] == {"channel": {"address": CONTACT}}
    h.result(request, 200, "{}")
    run_step = next(s for s in h.steps() if s.type == "run-subflow")
    assert parent_info["step_sid"] == run_step.sid


def test_the_variables_the_subflow_sets_come_back_as_widgets_name_and_the_parent_takes_completed() -> None:
    h = Catalog(parent(run_subflow(params=[{"key": "name", "value": "{{flow.data.name}}"}])),
                one_subflow(set_vars("greet", "count", greeting="Hi {{trigger.parent.parameters.name}}"),
                            set_vars("count", None, n="3", greeting="Hello {{trigger.parent.parameters.name}}")))
    h.start({"name": "Ann"})
    assert h.path() == [("incomingRequest", "Trigger", "sub"), ("incomingParent", "Trigger", "greet"),
                        ("next", "greet", "count"), ("next", "count", "Ended"), ("completed", "sub", "after"),
                        ("next", "after", "Ended")]
    assert h.widgets()["sub"] == {"greeting": "Hello Ann", "n": 3}  # the subflow's last value of each variable
    assert h.context["flow"]["variables"] == {"done": "yes"}  # not in the parent's flow.variables
    assert (h.record().status, h.record().end_reason) == ("ended", "completed")


def test_a_subflow_that_sets_nothing_completes_with_no_variables() -> None:
    h = Catalog(parent(run_subflow()), one_subflow())
    h.start()
    assert h.path() == [("incomingRequest", "Trigger", "sub"), ("incomingParent", "Trigger", "Ended"),
                        ("completed", "sub", "after"), ("next", "after", "Ended")]
    assert h.widgets()["sub"] == {}


def test_the_parents_variables_and_widgets_are_untouched_by_the_subflow_and_visible_again_afterwards() -> None:
    flow = flow_of(set_vars("first", "sub", a="parent", kept="1"),
                   run_subflow(completed="check"),
                   set_vars("check", None, seen="{{flow.variables.a}}/{{widgets.first.a}}/{{widgets.sub.a}}"),
                   set_vars("oops"))
    # The subflow has a widget named like the parent's and sets a variable named like the parent's.
    h = Catalog(flow, one_subflow(set_vars("first", None, a="sub:{{flow.variables.kept}}")))
    h.start()
    assert h.context["flow"]["variables"] == {"a": "parent", "kept": 1, "seen": "parent/parent/sub:"}
    assert h.widgets()["first"] == {"a": "parent", "kept": 1}
    assert h.widgets()["sub"] == {"a": "sub:"}
    assert "parent" not in h.context["trigger"]  # the parent's own trigger context is back


# -- steps ---------------------------------------------------------------------------------------------


def test_the_subflow_steps_are_the_executions_steps_and_name_the_run_subflow_step_as_parent() -> None:
    h = Catalog(parent(run_subflow()), one_subflow(http("call", "http://svc/x", "keep"), set_vars("keep", x="1")))
    h.start()
    h.now += 5
    h.result(h.requests()[0], 200, "{}")
    steps = h.steps()
    assert [s.index for s in steps] == list(range(6))
    assert {(s.execution_sid, s.flow_sid) for s in steps} == {(SID, FLOW_SID)}
    run_step = steps[4]
    assert (run_step.name, run_step.transitioned_from, run_step.type) == ("completed", "sub", "run-subflow")
    assert [s.parent_step_sid for s in steps] == ["", run_step.sid, run_step.sid, run_step.sid, "", ""]
    # A step is recorded when its widget is left; it started when the widget was entered.
    assert (run_step.date_created, run_step.date_updated) == (h.now - 5, h.now)
    assert run_step.context == {"widgets": {"sub": {"x": 1}}}


def test_a_subflow_step_keeps_studios_step_json_shape_with_parent_step_sid() -> None:
    h = Catalog(parent(run_subflow()), one_subflow(set_vars("keep", x="1")))
    h.start()
    steps = h.steps()
    urls = Urls("https://sb.example.com", h.settings.account_sid)
    inner, outer = step_json(steps[1], urls), step_json(steps[0], urls)
    assert inner.keys() == outer.keys()
    assert (inner["parent_step_sid"], outer["parent_step_sid"]) == (steps[3].sid, None)
    assert inner["flow_sid"] == FLOW_SID and inner["url"].startswith(f"https://sb.example.com/v2/Flows/{FLOW_SID}/")


def test_history_carries_parent_step_sid_only_on_subflow_steps_and_reads_back_both() -> None:
    h = Catalog(parent(run_subflow()), one_subflow(set_vars("keep", x="1")))
    h.start()
    (batch,) = history_batch(h.steps())
    assert ["parent_step_sid" in step for step in batch.steps] == [False, True, True, False, False]
    assert [StepRecord(**step) for step in batch.steps] == h.steps()
    assert decode(encode(h.steps()[1])) == h.steps()[1]


# -- waiting inside the subflow ------------------------------------------------------------------------


def test_an_http_widget_inside_the_subflow_parks_and_resumes_in_the_subflows_definition() -> None:
    # The parent has a widget named "call" too, leading elsewhere: the result must resume the subflow's.
    flow = parent(run_subflow(), http("call", "http://parent/never", "oops", "oops"))
    h = Catalog(flow, one_subflow(http("call", "http://svc/sub", "got"),
                                  set_vars("got", None, status="{{widgets.call.status_code}}")))
    [request] = h.requests(h.start())
    assert request.url == "http://svc/sub" and h.stored().wait is not None
    assert h.stored().frames[0].widget == "sub"
    h.result(request, 200, '{"ok": true}')
    assert h.path()[2:] == [("success", "call", "got"), ("next", "got", "Ended"), ("completed", "sub", "after"),
                            ("next", "after", "Ended")]
    assert h.widgets()["sub"] == {"status": 200}
    assert "call" not in h.widgets()  # the subflow's widgets stay the subflow's


ASK = {"name": "ask", "type": "send-and-wait-for-reply", "properties": {"body": "Colour?", "timeout": "60"},
       "transitions": [{"event": "incomingMessage", "next": "got"}, {"event": "timeout", "next": "late"},
                       {"event": "deliveryFailure"}]}


@pytest.mark.parametrize("answer,expected", [
    pytest.param("blue", {"answer": "blue"}, id="the reply resumes Send & Wait inside the subflow"),
    pytest.param(None, {"answer": "none"}, id="its timer fires inside the subflow"),
])
def test_send_and_wait_inside_the_subflow_resumes_on_a_reply_or_its_timer(answer: str | None,
                                                                          expected: dict[str, str]) -> None:
    h = Catalog(parent(run_subflow()),
                one_subflow(ASK, set_vars("got", answer="{{widgets.ask.inbound.Body}}"), set_vars("late", answer="none")),
                settings=Settings(twilio_api_base=API))
    started = h.start()
    [send] = h.requests(started)
    [timer] = [c for c in started.commands if isinstance(c, ScheduleTimer) and c.token == send.token]
    h.result(send, 201, message_resource())
    if answer is not None:
        h.message(answer)
    else:
        h.fire(timer.timer_id, SID, timer.token)
    assert h.widgets()["sub"] == expected
    assert h.path()[-2:] == [("completed", "sub", "after"), ("next", "after", "Ended")]


def test_voice_widgets_inside_the_subflow_answer_the_call_and_resume_on_the_parents_webhook() -> None:
    flow = parse_definition({"initial_state": "Trigger", "flags": {"allow_concurrent_calls": True}, "states": [
        {"name": "Trigger", "type": "trigger", "properties": {},
         "transitions": [{"event": "incomingCall", "next": "sub"}]},
        run_subflow(params=[{"key": "caller", "value": "{{trigger.call.From}}"}], completed="bye"),
        {"name": "bye", "type": "say-play", "properties": {"say": "Bye"},
         "transitions": [{"event": "audioComplete"}]},
        set_vars("oops")]})
    h = Catalog(flow, one_subflow({"name": "hello", "type": "say-play",
                                   "properties": {"say": "Hi {{trigger.parent.parameters.caller}}"},
                                   "transitions": [{"event": "audioComplete"}]}),
                settings=Settings(public_base_url="https://sb.example.com"))
    webhook = f"https://sb.example.com/v1/Accounts/{h.settings.account_sid}/Flows/{FLOW_SID}"
    first = h.send(call_webhook(sid=SID))
    assert f">Hi {CONTACT}</Say>" in first.commands[-1].twiml  # type: ignore[union-attr]
    assert f"{webhook}?FlowEvent=audioComplete" in first.commands[-1].twiml  # type: ignore[union-attr]
    second = h.send(call_webhook("audioComplete", sid="FN" + "d" * 32, reply="w2"))
    assert ">Bye</Say>" in second.commands[-1].twiml  # type: ignore[union-attr]
    h.send(call_webhook("audioComplete", sid="FN" + "e" * 32, reply="w3"))
    assert h.path() == [("incomingCall", "Trigger", "sub"), ("incomingParent", "Trigger", "hello"),
                        ("audioComplete", "hello", "Ended"), ("completed", "sub", "bye"),
                        ("audioComplete", "bye", "Ended")]


# -- revisions --------------------------------------------------------------------------------------

REVISIONS = {SUB: {1: (subflow(set_vars("v", rev="1")), "published"),
                   2: (subflow(set_vars("v", rev="2")), "published"),
                   3: (subflow(set_vars("v", rev="3")), "draft")}}


@pytest.mark.parametrize("wanted,runs", [
    pytest.param("LatestPublished", 2, id="LatestPublished runs the newest published revision"),
    pytest.param("LatestDraft", 3, id="LatestDraft runs the newest revision, draft or not"),
    pytest.param("LatestRevision", 3, id="LatestRevision (the REST API's name) the same"),
    pytest.param("latestpublished", 2, id="the names are case-insensitive"),
    pytest.param("1", 1, id="a revision number runs that revision"),
    pytest.param(3, 3, id="a revision number written as a JSON number too"),
])
def test_flow_revision_picks_the_subflow_revision_that_runs(wanted: Any, runs: int) -> None:
    h = Catalog(parent(run_subflow(revision=wanted)), REVISIONS)
    h.start()
    assert h.widgets()["sub"] == {"rev": runs}


def test_the_subflow_revision_is_fixed_when_the_widget_is_entered() -> None:
    h = Catalog(parent(run_subflow()), {SUB: {1: (subflow(http("call", "http://svc/x", "v"), set_vars("v", rev="1")),
                                                  "published")}})
    [request] = h.requests(h.start())
    assert (h.stored().frames[0].flow_sid, h.stored().frames[0].revision) == (SUB, 1)
    h.catalog[SUB][2] = (subflow(http("call", "http://svc/x", "v"), set_vars("v", rev="2")), "published")
    h.result(request, 200, "{}")
    assert h.widgets()["sub"] == {"rev": 1}


# -- failing -------------------------------------------------------------------------------------------

NESTED = subflow(run_subflow("inner", flow_sid=SUB), set_vars("after"), set_vars("oops"))
FAILING_CASES = [
    ("the flow does not exist", run_subflow(flow_sid=MISSING), {},
     f"81024: Subflow Error: the flow {MISSING} has no revision 'LatestPublished'"),
    ("the revision does not exist", run_subflow(revision="7"), one_subflow(),
     f"81024: Subflow Error: the flow {SUB} has no revision 7"),
    ("the flow has no published revision", run_subflow(), {SUB: {1: (subflow(), "draft")}},
     f"81024: Subflow Error: the flow {SUB} has no revision 'LatestPublished'"),
    ("the subflow runs a subflow itself", run_subflow(), {SUB: {1: (NESTED, "published")}},
     f"81024: Subflow Error: the subflow {SUB} (revision 1) runs a subflow itself (widget 'inner')"),
    ("flow_revision is not a revision", run_subflow(revision="Newest"), one_subflow(),
     "81021: Flow revision must be an integer or enum(LatestPublished, LatestRevision), got 'Newest'"),
    ("a parameter's Liquid fails", run_subflow(params=[{"key": "x", "value": "{{ 1 | divided_by: 0 }}"}]),
     one_subflow(), "81018: "),
]


@pytest.mark.parametrize("widget,subflows,error", [pytest.param(w, s, e, id=i) for i, w, s, e in FAILING_CASES])
def test_a_subflow_that_cannot_run_takes_failed_without_running_anything(
        widget: dict[str, Any], subflows: Any, error: str) -> None:
    h = Catalog(parent(widget), subflows)
    h.start()
    assert h.path() == [("incomingRequest", "Trigger", "sub"), ("failed", "sub", "oops"), ("next", "oops", "Ended")]
    assert h.widgets()["sub"]["error"].startswith(error)
    assert (h.record().status, h.record().end_reason) == ("ended", "completed")


INSIDE_ERRORS = [
    ("a retired widget", {"name": "bot", "type": "understand", "properties": {}, "transitions": []}, 81002,
     "widget type 'understand' belongs to Autopilot, which Twilio has retired"),
    ("a Liquid error in a widget without a failure transition", set_vars("bad", x="{{ 1 | divided_by: 0 }}"), 81018,
     "Liquid error"),
]


@pytest.mark.parametrize("widget,code,message", [pytest.param(w, c, m, id=i) for i, w, c, m in INSIDE_ERRORS])
def test_a_widget_error_inside_the_subflow_ends_the_subflow_and_the_parent_takes_failed_with_81024(
        widget: dict[str, Any], code: int, message: str) -> None:
    h = Catalog(parent(run_subflow()), one_subflow(set_vars("first", widget["name"], x="1"), widget))
    h.start()
    steps = h.steps()
    assert [(s.name, s.transitioned_from, s.transitioned_to) for s in steps] == [
        ("incomingRequest", "Trigger", "sub"), ("incomingParent", "Trigger", "first"),
        ("next", "first", widget["name"]), (str(code), widget["name"], "Ended"), ("failed", "sub", "oops"),
        ("next", "oops", "Ended")]
    assert steps[3].context["error"]["code"] == code and steps[3].parent_step_sid == steps[4].sid
    error = h.widgets()["sub"]["error"]
    assert error.startswith(f"81024: Subflow Error: {code}: ") and message in error
    assert "error" not in h.context  # the execution goes on and ends normally
    assert (h.record().status, h.record().end_reason) == ("ended", "completed")


def test_a_subflow_revision_gone_while_it_waits_fails_the_run_subflow_widget() -> None:
    h = Catalog(parent(run_subflow()), one_subflow(http("call", "http://svc/x", "v"), set_vars("v")))
    [request] = h.requests(h.start())
    del h.catalog[SUB]
    h.result(request, 200, "{}")
    assert h.path()[-2:] == [("failed", "sub", "oops"), ("next", "oops", "Ended")]
    assert "the subflow's revision is gone" in h.widgets()["sub"]["error"]


# -- limits, ends and crashes --------------------------------------------------------------------------


def test_the_1000_step_limit_counts_the_parents_and_the_subflows_steps_together() -> None:
    loop = subflow({"name": "a", "type": "split-based-on", "properties": {"input": "x"},
                    "transitions": [{"event": "noMatch", "next": "b"}]},
                   {"name": "b", "type": "split-based-on", "properties": {"input": "x"},
                    "transitions": [{"event": "noMatch", "next": "a"}]})
    h = Catalog(parent(set_vars("before", "sub", x="1"), run_subflow()), {SUB: {1: (loop, "published")}})
    h.start()
    steps = h.steps()
    assert len(steps) == MAX_STEPS + 1 and steps[-1].name == "81000" and steps[-1].index == MAX_STEPS
    assert steps[-1].parent_step_sid != ""  # it was cut short inside the subflow
    record = h.record()
    assert (record.status, record.end_reason, record.context["error"]["code"]) == ("ended", "step_limit", 81000)
    # The execution's context is the parent's again; the subflow's widgets are in its steps.
    assert record.context["flow"]["flow_sid"] == FLOW_SID and record.context["flow"]["variables"] == {"x": 1}
    assert "parent" not in record.context["trigger"]


def test_a_run_subflow_widget_looping_on_completed_is_stopped_on_its_eleventh_run_with_81001() -> None:
    h = Catalog(parent(run_subflow(completed="sub")), one_subflow(set_vars("inner", x="1")))
    h.start()
    runs = [s.name for s in h.steps() if s.transitioned_from == "sub"]
    assert runs == ["completed"] * MAX_STREAK + ["81001"]
    assert h.record().end_reason == "loop_limit"


def test_a_widget_looping_inside_the_subflow_is_stopped_with_81001() -> None:
    loop = subflow({"name": "sub", "type": "split-based-on", "properties": {"input": "x"},
                    "transitions": [{"event": "noMatch", "next": "sub"}]})
    # The subflow's widget has the Run Subflow widget's name: entering it is not "the same widget again".
    h = Catalog(parent(run_subflow()), {SUB: {1: (loop, "published")}})
    h.start()
    inner = [s.name for s in h.steps() if s.parent_step_sid]
    assert inner == ["incomingParent"] + ["noMatch"] * MAX_STREAK + ["81001"]
    assert h.record().end_reason == "loop_limit"


def test_ending_the_execution_inside_the_subflow_cancels_its_wait_and_restores_the_parents_context() -> None:
    h = Catalog(parent(run_subflow()), one_subflow(ASK, set_vars("got"), set_vars("late")),
                settings=Settings(twilio_api_base=API))
    [send] = h.requests(h.start())
    h.result(send, 201, message_resource())
    timer = h.stored().wait.timer_id  # type: ignore[union-attr]
    outcome = h.send(EndRequested(SID, ROUTE, h.now))
    assert CancelTimer(timer) in outcome.commands
    record = h.record()
    assert (record.status, record.end_reason) == ("ended", "ended")
    assert record.context["flow"]["flow_sid"] == FLOW_SID and "sub" not in record.context["widgets"]


def test_events_replayed_inside_the_subflow_resend_their_outputs_and_change_nothing() -> None:
    h = Catalog(parent(run_subflow()), one_subflow(http("a", "http://svc/a", "b"), http("b", "http://svc/b", "v"),
                                                   set_vars("v", x="1")))
    first = h.start(offset=0)
    [request_a] = h.requests(first)
    after_a = h.result(request_a, 200, "{}", offset=1)
    [request_b] = h.requests(after_a)
    stored = h.stored().to_dict()
    # A crash: both events come again at their offsets.
    replay_0 = h.start(offset=0)
    replay_1 = h.result(request_a, 200, "{}", offset=1)
    assert h.requests(replay_0) == [] and h.requests(replay_1) == [request_b]
    assert replay_0.executions == replay_1.executions == {} and h.stored().to_dict() == stored
    # A duplicate result at a new offset (the http-worker repeated itself) is stale: nothing happens.
    duplicate = h.result(request_a, 200, "{}", offset=2)
    assert duplicate.commands == [] and duplicate.records == []
    h.result(request_b, 200, "{}", offset=3)
    late = h.result(request_b, 200, "{}", offset=4)  # the parent is done: the late result is ignored
    assert late.commands == [] and late.records == []
    assert [s.transitioned_from for s in h.steps()] == ["Trigger", "Trigger", "a", "b", "v", "sub", "after"]
    assert h.widgets()["sub"] == {"x": 1}


def test_a_row_written_inside_a_subflow_survives_the_encoding_and_old_rows_decode_without_frames() -> None:
    h = Catalog(parent(run_subflow()), one_subflow(http("a", "http://svc/a")))
    h.start()
    route, executions = decode_route_record(encode_route_record(h.route, h.executions))
    assert executions == h.executions and executions[SID].frames[0].saved["flow"]["flow_sid"] == FLOW_SID
    old = h.stored().to_dict()
    del old["frames"]
    assert ExecutionState.from_dict(orjson.loads(orjson.dumps(old))).frames == []
