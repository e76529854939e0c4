"""Property-based fuzzing of what users hand us, with a fixed budget: flow definitions and Liquid templates.

Every input is either accepted or rejected with the specific error Studio has for it (81022 for a definition,
TemplateError → 81018 for a template); no other exception escapes, whatever the input. The budget is fixed
(``max_examples``) and the seed derandomized, so a run costs the same every time and a failure reproduces.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.flow import FlowDefinitionError
from shared.liquid_render import TemplateError, render
from shared.validation import WIDGET_TYPES, validate_definition
from tests.conftest import FIXTURES

BUDGET = settings(max_examples=400, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25)

FLOWS = [json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))]


@st.composite
def mutated_flows(draw: st.DrawFn) -> Any:
    """A real flow with a few of its parts replaced, deleted or retyped: near-valid input finds the edge cases."""
    flow = copy.deepcopy(draw(st.sampled_from(FLOWS)))
    for _ in range(draw(st.integers(1, 4))):
        states = flow.get("states") if isinstance(flow, dict) else None
        target: Any = flow
        if isinstance(states, list) and states and draw(st.booleans()):
            target = states[draw(st.integers(0, len(states) - 1))]
            if isinstance(target, dict) and isinstance(target.get("properties"), dict) and draw(st.booleans()):
                target = target["properties"]
        if not isinstance(target, dict) or not target:
            break
        key = draw(st.sampled_from(sorted(target)))
        action = draw(st.sampled_from(["replace", "delete", "type", "transitions"]))
        if action == "replace":
            target[key] = draw(json_values)
        elif action == "delete":
            del target[key]
        elif action == "type":
            target[key] = draw(st.sampled_from(sorted(WIDGET_TYPES) + ["twiml-redirect", "", "x" * 300]))
        else:
            target[key] = [{"event": draw(st.text(max_size=10)), "next": draw(st.text(max_size=10))}]
    return flow


def _validate_or_81022(value: Any) -> None:
    try:
        flow = validate_definition(value)
    except FlowDefinitionError as exc:
        assert exc.code == 81022 and exc.issues, "a rejection names at least one problem"
        assert all(issue.property_path.startswith("#") for issue in exc.issues)
        return
    assert flow.initial_state in flow.states


@BUDGET
@given(json_values)
def test_any_json_value_as_a_definition_is_valid_or_rejected_with_81022(value: Any) -> None:
    _validate_or_81022(value)


@BUDGET
@given(mutated_flows())
def test_a_mutated_real_flow_is_valid_or_rejected_with_81022(value: Any) -> None:
    _validate_or_81022(value)


liquid_pieces = st.sampled_from([
    "{{", "}}", "{%", "%}", " for x in (1..100) ", " endfor ", " if ", " endif ", "flow.data.x", "widgets.a.parsed",
    " | ", "upcase", "to_json", "split: ','", "size", " assign y = ", "'", '"', "[0]", ".first", "-", "(", ")",
    " capture c ", " endcapture ", " raw ", " endraw ", " cycle ", " tablerow t in flow.data.list ", " endtablerow ",
    "date: '%Y'", "divided_by: 0", "times: 99999999999", "append: 'x'", " unless ", " case ", " when 1 ", " else ",
])


@BUDGET
@given(st.lists(liquid_pieces | st.text(max_size=8), max_size=20).map("".join))
def test_any_template_renders_or_fails_with_a_template_error(source: str) -> None:
    context = {"flow": {"data": {"x": "1", "list": list(range(30))}}, "widgets": {"a": {"parsed": {"k": [1, 2]}}}}
    try:
        text = render(source, context)
    except TemplateError as exc:
        assert str(exc).startswith("Liquid error in ")
        return
    assert len(text.encode()) <= 16 * 1024
