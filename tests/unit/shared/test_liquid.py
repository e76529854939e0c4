"""Liquid with Studio's context rules and limits (shared/liquid_render.py)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.liquid_render import LOOP_LIMIT, OUTPUT_LIMIT, TemplateError, render, render_value

CONTEXT: dict[str, Any] = {
    "flow": {"variables": {"count": 2, "name": "Ann"}, "data": {"items": list(range(40))}},
    "widgets": {"lookup": {"parsed": {"message": "Hi", "person": {"name": "Bob", "age": 40}}}},
    "trigger": {"message": {"Body": "Hello there", "From": "+15550001"}},
}


@pytest.mark.parametrize("template,expected", [
    pytest.param("plain text", "plain text", id="a string without Liquid is returned untouched"),
    pytest.param("{{flow.variables.name}}", "Ann", id="flow.variables paths resolve"),
    pytest.param("{{widgets.lookup.parsed.person.name}}", "Bob", id="widgets.NAME.parsed paths resolve"),
    pytest.param("{{trigger.message.Body}}", "Hello there", id="trigger.message paths resolve"),
    pytest.param("[{{flow.variables.nope}}]", "[]", id="an undefined variable renders empty"),
    pytest.param("[{{nothing.at.all.here}}]", "[]", id="an undefined nested path renders empty"),
    pytest.param("{{flow.variables.nope | upcase}}", "", id="a filter on an undefined variable renders empty"),
    pytest.param("{{flow.variables.count | plus: 1}}", "3", id="plus adds to a number"),
    pytest.param("{{ 'Ab C' | downcase | strip }}", "ab c", id="standard filters chain"),
    pytest.param("{{widgets.lookup.parsed.person | to_json}}", '{"name":"Bob","age":40}',
                 id="to_json serialises an object as JSON"),
    pytest.param("{% if flow.variables.count %}{{flow.variables.count | plus: 1}} {% else %} 1 {% endif %}",
                 "3 ", id="the documented counter idiom increments an existing count"),
    pytest.param("{% if flow.variables.nope %}{{flow.variables.nope | plus: 1}} {% else %} 1 {% endif %}",
                 " 1 ", id="the documented counter idiom starts at one"),
])
def test_rendering_follows_studio_context_rules(template: str, expected: str) -> None:
    assert render(template, CONTEXT) == expected


def test_a_loop_runs_at_most_15_iterations() -> None:
    out = render("{% for i in flow.data.items %}{{i}},{% endfor %}", CONTEXT)
    assert out == ",".join(str(i) for i in range(LOOP_LIMIT)) + ","


def test_a_loop_of_15_items_runs_completely() -> None:
    assert render("{% for i in (1..15) %}x{% endfor %}", CONTEXT) == "x" * 15


def test_forloop_length_reports_the_capped_length() -> None:
    assert render("{% for i in flow.data.items %}{{forloop.length}}{% break %}{% endfor %}", CONTEXT) == "15"


def test_nested_loops_are_capped_one_by_one() -> None:
    out = render("{% for i in (1..2) %}{% for j in (1..20) %}.{% endfor %}|{% endfor %}", CONTEXT)
    assert out == ("." * 15 + "|") * 2


def test_loop_limit_and_offset_apply_before_the_cap() -> None:
    assert render("{% for i in flow.data.items offset:30 %}{{i}} {% endfor %}", CONTEXT) == \
        " ".join(str(i) for i in range(30, 40)) + " "


def test_deeply_nested_loops_beyond_the_sanity_bound_are_a_template_error() -> None:
    deep = "{% for a in (1..15) %}{% for b in (1..15) %}{% for c in (1..15) %}{% for d in (1..2) %}" \
           "{% endfor %}{% endfor %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateError, match="nested loops exceed"):
        render(deep, CONTEXT)


def test_output_of_exactly_16_kb_is_allowed() -> None:
    assert len(render("{{ 'x' }}" + "y" * (OUTPUT_LIMIT - 1), CONTEXT)) == OUTPUT_LIMIT


def test_output_over_16_kb_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="exceeds Studio's limit of 16384 bytes"):
        render("{{ 'x' }}" + "y" * OUTPUT_LIMIT, CONTEXT)


def test_the_16_kb_limit_counts_utf8_bytes() -> None:
    with pytest.raises(TemplateError, match="16384 bytes"):
        render("{{ 'x' }}" + "é" * (OUTPUT_LIMIT // 2), CONTEXT)


def test_output_growing_in_a_loop_past_16_kb_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="16384 bytes"):
        render("{% for i in (1..15) %}" + "z" * 1200 + "{% endfor %}", CONTEXT)


@pytest.mark.parametrize("template,fragment", [
    pytest.param("{% if %}yes{% endif %}", "missing expression", id="a syntax error"),
    pytest.param("{{ 'x' | no_such_filter }}", "unknown filter", id="an unknown filter"),
    pytest.param("{{ 1 | divided_by: 0 }}", "divide by 0", id="division by zero"),
    pytest.param("{% for i in (1..3) %}", "endfor", id="an unclosed block"),
])
def test_a_template_error_raises_a_readable_template_error(template: str, fragment: str) -> None:
    with pytest.raises(TemplateError) as caught:
        render(template, CONTEXT)
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("Liquid error in ")
    assert caught.value.code == 81018


def test_render_value_renders_strings_inside_lists_and_dicts() -> None:
    value = {"a": ["{{flow.variables.name}}", 3], "b": {"c": "{{flow.variables.count}}"}}
    assert render_value(value, CONTEXT) == {"a": ["Ann", 3], "b": {"c": "2"}}


def test_an_object_output_directly_renders_as_json() -> None:
    assert render("{{widgets.lookup.parsed.person}}", CONTEXT) == '{"name":"Bob","age":40}'


def test_an_array_output_directly_concatenates_its_items_like_liquid() -> None:
    assert render("{{ arr }}", {"arr": [1, "a", 2]}) == "1a2"
