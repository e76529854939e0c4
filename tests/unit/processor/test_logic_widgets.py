"""Set Variables and Split Based On…, table-driven: one case per Studio rule."""

from __future__ import annotations

from typing import Any

import pytest

from services.processor.operators import OPERATORS, evaluate
from services.processor.widgets.logic import typed_value

from .harness import Harness, flow_of

COUNTER = "{% if flow.variables.count %}\n{{flow.variables.count | plus: 1}} {% else %} 1 {% endif %}"


# -- Set Variables ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rendered,expected", [
    pytest.param("3", 3, id="an integer becomes a number"),
    pytest.param(" 2 ", 2, id="white space around a number is ignored"),
    pytest.param("-12", -12, id="a negative integer becomes a number"),
    pytest.param("0", 0, id="zero becomes a number"),
    pytest.param("2.5", 2.5, id="a decimal becomes a number"),
    pytest.param("007", "007", id="leading zeros keep the value text"),
    pytest.param("+15551234567", "+15551234567", id="a phone number stays text"),
    pytest.param("1.50", "1.50", id="a decimal with a trailing zero stays text"),
    pytest.param("1e3", "1e3", id="exponent notation stays text"),
    pytest.param("12345678901234567890", "12345678901234567890", id="an integer too long for 15 digits stays text"),
    pytest.param("Ann ", "Ann ", id="text is stored exactly as rendered"),
    pytest.param("", "", id="an empty value stays an empty string"),
])
def test_a_set_variables_value_is_typed_like_studio(rendered: str, expected: Any) -> None:
    value = typed_value(rendered)
    assert value == expected and type(value) is type(expected)


def _counter_flow(until: int = 3) -> Any:
    return flow_of(
        {"name": "count", "type": "set-variables", "properties": {"variables": [{"key": "count", "value": COUNTER}]},
         "transitions": [{"event": "next", "next": "check"}]},
        {"name": "check", "type": "split-based-on", "properties": {"input": "{{flow.variables.count}}"},
         "transitions": [{"event": "noMatch", "next": "count"},
                         {"event": "match", "next": None,
                          "conditions": [{"friendly_name": "done", "arguments": ["{{flow.variables.count}}"],
                                          "type": "equal_to", "value": str(until)}]}]},
    )


def test_the_documented_counter_idiom_counts_one_two_three() -> None:
    h = Harness(_counter_flow(3))
    h.start()
    counts = [s for s in h.steps() if s.transitioned_from == "count"]
    assert [s.context["widgets"]["count"]["count"] for s in counts] == [1, 2, 3]
    assert h.context["flow"]["variables"]["count"] == 3
    assert h.record().status == "ended"


def test_set_variables_writes_flow_variables_and_mirrors_them_at_widgets_name() -> None:
    h = Harness(flow_of({"name": "set", "type": "set-variables", "properties": {"variables": [
        {"key": "first", "value": "{{flow.data.name}}"},
        {"key": "greeting", "value": "Hello {{flow.variables.first}}"},
    ]}, "transitions": [{"event": "next"}]}))
    h.start({"name": "Ann"})
    assert h.context["flow"]["variables"] == {"first": "Ann", "greeting": "Hello Ann"}
    assert h.context["widgets"]["set"] == {"first": "Ann", "greeting": "Hello Ann"}
    assert h.path() == [("incomingRequest", "Trigger", "set"), ("next", "set", "Ended")]


def test_set_variables_keys_are_case_sensitive_and_may_be_set_again() -> None:
    h = Harness(flow_of(
        {"name": "a", "type": "set-variables", "properties": {"variables": [{"key": "x", "value": "1"},
                                                                             {"key": "X", "value": "big"}]},
         "transitions": [{"event": "next", "next": "b"}]},
        {"name": "b", "type": "set-variables", "properties": {"variables": [{"key": "x", "value": "two"}]},
         "transitions": [{"event": "next"}]}))
    h.start()
    assert h.context["flow"]["variables"] == {"x": "two", "X": "big"}


def test_set_variables_with_parse_as_json_stores_an_object() -> None:
    h = Harness(flow_of({"name": "set", "type": "set-variables", "properties": {"variables": [
        {"key": "obj", "value": '{"a": [1, 2], "b": "{{flow.data.name}}"}', "parse_as_json": True},
        {"key": "plain", "value": '{"a": 1}'},
    ]}, "transitions": [{"event": "next"}]}))
    h.start({"name": "Ann"})
    assert h.context["flow"]["variables"] == {"obj": {"a": [1, 2], "b": "Ann"}, "plain": '{"a": 1}'}


def test_a_template_error_in_set_variables_ends_the_execution_with_81018() -> None:
    h = Harness(flow_of({"name": "set", "type": "set-variables",
                         "properties": {"variables": [{"key": "x", "value": "{{ 1 | divided_by: 0 }}"}]},
                         "transitions": [{"event": "next"}]}))
    h.start()
    record = h.record()
    assert record.status == "ended" and record.end_reason == "failed"
    assert record.context["error"]["code"] == 81018
    assert "divide by 0" in record.context["error"]["message"]
    assert h.path()[-1] == ("81018", "set", "Ended")


# -- Split Based On operators ----------------------------------------------------------------------

OPERATOR_CASES = [
    # equal_to / not_equal_to
    ("equal_to", "Yes", "yes", True, "equal_to ignores case"),
    ("equal_to", "  yes \n", "yes", True, "equal_to trims white space"),
    ("equal_to", "yes", " YES ", True, "equal_to trims and ignores case of the value too"),
    ("equal_to", "yess", "yes", False, "equal_to needs the whole text"),
    ("equal_to", "03", "3", False, "equal_to compares text so leading zeros matter"),
    ("equal_to", "", "", True, "equal_to matches two empty strings"),
    ("not_equal_to", "no", "yes", True, "not_equal_to holds for different text"),
    ("not_equal_to", "YES", "yes", False, "not_equal_to ignores case"),
    # matches_any_of / does_not_match_any_of
    ("matches_any_of", "Yeah", "yes,yeah,yup", True, "matches_any_of matches one item of a comma list"),
    ("matches_any_of", " YUP ", "yes, yeah , yup", True, "matches_any_of trims the items and the input"),
    ("matches_any_of", "ye", "yes,yeah,yup", False, "matches_any_of needs a whole item"),
    ("matches_any_of", "", "yes,,no", False, "matches_any_of ignores empty items"),
    ("does_not_match_any_of", "nope", "yes,yeah", True, "does_not_match_any_of holds when no item matches"),
    ("does_not_match_any_of", "YES", "yes,yeah", False, "does_not_match_any_of fails when an item matches"),
    # is_blank / is_not_blank
    ("is_blank", "", "", True, "is_blank holds for an empty input"),
    ("is_blank", " \t\n", "", True, "is_blank holds for white space only"),
    ("is_blank", "x", "", False, "is_blank fails for text"),
    ("is_not_blank", " a ", "", True, "is_not_blank holds for text"),
    ("is_not_blank", "  ", "", False, "is_not_blank fails for white space only"),
    # regex
    ("regex", "6", "[1-5]", False, "regex must match the whole string"),
    ("regex", "3", "[1-5]", True, "regex matches a whole single character"),
    ("regex", "Oh YES please", ".*yes.*", True, "regex ignores case"),
    ("regex", " 42 ", r"\d+", True, "regex trims the input"),
    ("regex", "abc", "([a-", False, "an invalid regex never matches"),
    # contains / does_not_contain
    ("contains", "aab", "aa", True, "contains finds a substring"),
    ("contains", "aab", "A", True, "contains ignores case"),
    ("contains", "aab", "c", False, "contains fails without the substring"),
    ("does_not_contain", "aab", "c", True, "does_not_contain holds without the substring"),
    ("does_not_contain", "aab", "B", False, "does_not_contain ignores case"),
    # starts_with / does_not_start_with
    ("starts_with", " Hoot", "hoo", True, "starts_with trims and ignores case"),
    ("starts_with", "shoot", "hoo", False, "starts_with anchors at the start"),
    ("does_not_start_with", "shoot", "hoo", True, "does_not_start_with holds for another start"),
    ("does_not_start_with", "Hoot", "HOO", False, "does_not_start_with ignores case"),
    # less_than / greater_than
    ("less_than", "2", "10", True, "less_than compares numbers not text"),
    ("less_than", "-1.5", "0", True, "less_than reads negative decimals"),
    ("less_than", "10", "10", False, "less_than is strict"),
    ("less_than", "a", "b", False, "less_than never compares letters"),
    ("less_than", "1e1", "20", False, "less_than does not read exponent notation"),
    ("greater_than", " 10 ", "9", True, "greater_than trims and compares numbers"),
    ("greater_than", ".5", "0.25", True, "greater_than reads a leading-dot decimal"),
    ("greater_than", "", "0", False, "greater_than fails for an empty input"),
    # times
    ("is_before_time", "09:30", "10:00", True, "is_before_time compares 24-hour HH:MM"),
    ("is_before_time", "13:00", "09:00", False, "is_before_time uses the 24-hour clock"),
    ("is_before_time", "9:05", "10:00", True, "is_before_time accepts a one-digit hour"),
    ("is_before_time", "9am", "10:00", False, "is_before_time does not read other formats"),
    ("is_after_time", "23:59", "00:00", True, "is_after_time compares 24-hour HH:MM"),
    ("is_after_time", "10:00", "10:00", False, "is_after_time is strict"),
    # dates
    ("is_before_date", "2024-01-31", "2024-02-01", True, "is_before_date compares YYYY-MM-DD"),
    ("is_before_date", "2024-02-01", "2024-02-01", False, "is_before_date is strict"),
    ("is_before_date", "2024-01-31T23:00:00Z", "2024-02-01", True, "is_before_date reads the date of a timestamp"),
    ("is_before_date", "01/31/2024", "2024-02-01", False, "is_before_date does not read other formats"),
    ("is_after_date", "2025-01-01", "2024-12-31", True, "is_after_date compares YYYY-MM-DD"),
    ("is_after_date", "2024-13-01", "2024-12-31", False, "is_after_date rejects an impossible date"),
    # unknown
    ("has_any_value", "x", "", False, "an unknown operator never matches"),
]


@pytest.mark.parametrize("operator,tested,value,expected",
                         [pytest.param(*case[:4], id=case[4]) for case in OPERATOR_CASES])
def test_split_operator_rule(operator: str, tested: str, value: str, expected: bool) -> None:
    assert evaluate(operator, tested, value) is expected


def test_every_one_of_the_17_studio_operators_is_implemented_and_tested() -> None:
    assert len(OPERATORS) == 17
    assert {case[0] for case in OPERATOR_CASES} - {"has_any_value"} == set(OPERATORS)


# -- Split Based On transitions --------------------------------------------------------------------


def _split(input_: str, *conditions: tuple[str, str, str | None]) -> Any:
    transitions: list[dict[str, Any]] = [{"event": "noMatch", "next": "no"}]
    for operator, value, nxt in conditions:
        transitions.append({"event": "match", "next": nxt, "conditions": [
            {"friendly_name": f"{operator} {value}", "arguments": [input_], "type": operator, "value": value}]})
    leaf = {"type": "set-variables", "properties": {"variables": []}, "transitions": [{"event": "next"}]}
    return flow_of({"name": "split", "type": "split-based-on", "properties": {"input": input_},
                    "transitions": transitions},
                   {"name": "a", **leaf}, {"name": "b", **leaf}, {"name": "no", **leaf})


@pytest.mark.parametrize("data,conditions,expected", [
    pytest.param({"v": "yes"}, [("contains", "y", "a"), ("equal_to", "yes", "b")], "a",
                 id="match transitions are tried in order and the first match wins"),
    pytest.param({"v": "yes"}, [("equal_to", "no", "a"), ("equal_to", "yes", "b")], "b",
                 id="a later match is taken when earlier ones fail"),
    pytest.param({"v": "maybe"}, [("equal_to", "no", "a"), ("equal_to", "yes", "b")], "no",
                 id="noMatch is taken when no condition holds"),
    pytest.param({"v": "Bob", "expected": "bob"}, [("equal_to", "{{flow.data.expected}}", "a")], "a",
                 id="a condition value may be Liquid"),
    pytest.param({"v": 7}, [("greater_than", "5", "a")], "a",
                 id="the input is rendered Liquid compared as text"),
])
def test_split_takes_the_transition_studio_takes(data: dict[str, Any], conditions: list[Any], expected: str) -> None:
    h = Harness(_split("{{flow.data.v}}", *conditions))
    h.start(data)
    assert h.path()[1][2] == expected
    assert h.path()[1][0] == ("noMatch" if expected == "no" else "match")


def test_a_match_transition_without_next_ends_the_execution() -> None:
    h = Harness(_split("{{flow.data.v}}", ("equal_to", "x", None)))
    h.start({"v": "x"})
    assert h.path()[-1] == ("match", "split", "Ended")
    assert h.record().end_reason == "completed"


def test_a_template_error_in_a_condition_value_ends_the_execution_with_81018() -> None:
    h = Harness(_split("x", ("equal_to", "{% if %}", "a")))
    h.start()
    assert h.record().context["error"]["code"] == 81018
    assert h.path()[-1] == ("81018", "split", "Ended")


def test_a_split_exposes_no_widget_variables() -> None:
    h = Harness(_split("{{flow.data.v}}", ("equal_to", "x", "a")))
    h.start({"v": "x"})
    assert "split" not in h.context["widgets"]


def test_a_catastrophically_backtracking_regex_counts_as_no_match_instead_of_stalling_the_processor():
    import time

    from services.processor.operators import evaluate

    started = time.monotonic()
    assert evaluate("regex", "a" * 40 + "!", "(a+)+$") is False
    assert time.monotonic() - started < 5  # bounded by the 50 ms match timeout, not exponential time
