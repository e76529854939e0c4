"""Studio's execution limits: the same widget 10 times in a row (81001), 1,000 steps (81000), Liquid errors (81018)."""

from __future__ import annotations

from typing import Any

from services.processor.sprint import MAX_STEPS, MAX_STREAK

from .harness import Harness, flow_of


def self_loop() -> Any:
    return flow_of({"name": "loop", "type": "split-based-on", "properties": {"input": "x"},
                    "transitions": [{"event": "noMatch", "next": "loop"}]})


def test_the_limits_are_studios() -> None:
    assert (MAX_STREAK, MAX_STEPS) == (10, 1000)


def test_a_widget_may_run_ten_times_in_a_row_and_its_eleventh_run_ends_the_execution_with_81001() -> None:
    h = Harness(self_loop())
    h.start()
    steps = h.steps()
    assert [s.name for s in steps if s.transitioned_from == "loop"] == ["noMatch"] * 10 + ["81001"]
    assert steps[-1].transitioned_to == "Ended"
    assert steps[-1].context == {"error": {"code": 81001,
                                           "message": "Widget 'loop' exceeded max steps in a loop (10 in a row)"}}
    record = h.record()
    assert (record.status, record.end_reason) == ("ended", "loop_limit")
    assert record.context["error"]["code"] == 81001


def test_an_http_request_retrying_through_its_own_failure_transition_is_stopped_on_the_eleventh_attempt() -> None:
    h = Harness(flow_of({"name": "call", "type": "make-http-request", "properties": {"url": "http://svc/x"},
                         "transitions": [{"event": "success"}, {"event": "failed", "next": "call"}]}))
    h.start()
    attempts = 0
    while h.executions and h.requests():
        attempts += 1
        h.result(h.requests()[0], 500, "down", error="HTTP 500")
    assert attempts == 10
    assert h.record().context["error"]["code"] == 81001
    assert [s.name for s in h.steps()][-1] == "81001"


def test_widgets_alternating_are_not_in_a_row_and_run_until_the_1000_step_limit_with_81000() -> None:
    h = Harness(flow_of(
        {"name": "a", "type": "split-based-on", "properties": {"input": "x"},
         "transitions": [{"event": "noMatch", "next": "b"}]},
        {"name": "b", "type": "split-based-on", "properties": {"input": "x"},
         "transitions": [{"event": "noMatch", "next": "a"}]}))
    h.start()
    steps = h.steps()
    assert len(steps) == MAX_STEPS + 1  # 1,000 steps ran; the one refused is recorded with the code
    assert [s.name for s in steps[:MAX_STEPS]].count("81001") == 0
    assert steps[-1].name == "81000" and steps[-1].index == MAX_STEPS
    assert steps[-1].context["error"]["message"] == "Execution exceeded max steps allowed for a flow (1000)"
    record = h.record()
    assert (record.end_reason, record.context["error"]["code"], record.step_count) == ("step_limit", 81000, 1001)


def test_the_counter_retry_loop_of_the_http_request_page_is_not_a_loop_in_a_row() -> None:
    count = "{% if flow.variables.count %}\n{{flow.variables.count | plus: 1}} {% else %} 1 {% endif %}"
    h = Harness(flow_of(
        {"name": "call", "type": "make-http-request", "properties": {"url": "http://svc/x"},
         "transitions": [{"event": "success"}, {"event": "failed", "next": "count"}]},
        {"name": "count", "type": "set-variables", "properties": {"variables": [{"key": "count", "value": count}]},
         "transitions": [{"event": "next", "next": "check"}]},
        {"name": "check", "type": "split-based-on", "properties": {"input": "{{flow.variables.count}}"},
         "transitions": [{"event": "noMatch", "next": "call"},
                         {"event": "match", "next": "give_up",
                          "conditions": [{"friendly_name": "3", "arguments": [], "type": "equal_to", "value": "3"}]}]},
        {"name": "give_up", "type": "set-variables", "properties": {"variables": [{"key": "gave_up", "value": "yes"}]},
         "transitions": [{"event": "next"}]}))
    h.start()
    while h.executions and h.requests():
        h.result(h.requests()[0], 500, "down", error="HTTP 500")
    assert h.context["flow"]["variables"] == {"count": 3, "gave_up": "yes"}
    assert [s.transitioned_from for s in h.steps()].count("call") == 3
    assert h.record().end_reason == "completed"


def test_a_liquid_error_ends_the_execution_with_a_readable_81018_visible_in_steps_and_context() -> None:
    h = Harness(flow_of({"name": "set", "type": "set-variables",
                         "properties": {"variables": [{"key": "x", "value": "{{ 'a' | no_such_filter }}"}]},
                         "transitions": [{"event": "next"}]}))
    h.start()
    step = h.steps()[-1]
    message = "Liquid error in \"{{ 'a' | no_such_filter }}\": unknown filter 'no_such_filter'"
    assert (step.name, step.context) == ("81018", {"error": {"code": 81018, "message": message}})
    assert h.record().context["error"] == {"code": 81018, "message": message}


def test_a_liquid_loop_over_many_items_is_capped_not_an_error() -> None:
    h = Harness(flow_of({"name": "set", "type": "set-variables", "properties": {"variables": [
        {"key": "n", "value": "{% for i in flow.data.items %}x{% endfor %}"}]}, "transitions": [{"event": "next"}]}))
    h.start({"items": list(range(50))})
    assert h.context["flow"]["variables"]["n"] == "x" * 15
