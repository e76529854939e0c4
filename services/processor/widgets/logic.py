"""Widgets that only compute: Set Variables and Split Based On….

Set Variables
    Each ``{key, value}`` pair renders ``value`` (Liquid) and stores it at
    ``flow.variables.<key>``; later pairs see earlier ones. A rendered value that
    reads as a plain number becomes a number, so the documented counter idiom
    (``{% if flow.variables.count %}{{flow.variables.count | plus: 1}} {% else %} 1 {% endif %}``)
    counts 1, 2, 3… and numeric Liquid comparisons work. "Plain" means the text
    (ignoring surrounding white space) is exactly how that number prints:
    ``-12``, ``3``, ``2.5`` become numbers; ``007``, ``+15551234567``, ``1.50``
    and ``1e3`` stay text, so phone numbers, PINs and ZIP codes keep their form.
    Other values are stored exactly as rendered. With ``parse_as_json`` (on the
    pair or the widget; [AI]'s name for the "Parse as JSON object" checkbox) a
    value that parses as a JSON object or array is stored as that structure.
    The pairs written are also exposed at ``widgets.<name>.<key>``.

Split Based On…
    Renders ``input`` once, then tries the ``match`` transitions in the order
    they appear: the first whose conditions all hold (condition values are
    Liquid too) is taken; otherwise ``noMatch``. Operators: ``operators.py``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from shared.flow import State

from ..operators import evaluate
from ..sprint import Next, Sprint

__all__ = ["set_variables", "split_based_on", "typed_value"]

_INT = re.compile(r"^-?(0|[1-9]\d{0,14})$")
_FLOAT = re.compile(r"^-?(0|[1-9]\d{0,14})\.\d{1,15}$")


def typed_value(text: str) -> Any:
    """A rendered Set Variables value: a number when it reads as one exactly, else the text as rendered."""
    stripped = text.strip()
    if _INT.match(stripped):
        return 0 if stripped == "-0" else int(stripped)
    if _FLOAT.match(stripped):
        number = float(stripped)
        if repr(number) == stripped:
            return number
    return text


def _as_json(text: str) -> Any:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return typed_value(text)
    return value if isinstance(value, dict | list) else typed_value(text)


def set_variables(sprint: Sprint, widget: State) -> Next:
    variables = sprint.state.context.setdefault("flow", {}).setdefault("variables", {})
    widget_json = bool(widget.properties.get("parse_as_json"))
    written: dict[str, Any] = {}
    for pair in widget.properties.get("variables") or []:
        if not isinstance(pair, dict):
            continue
        key = str(pair.get("key", ""))
        if not key:
            continue
        rendered = sprint.render(pair.get("value", ""))
        value = _as_json(rendered) if (widget_json or pair.get("parse_as_json")) else typed_value(rendered)
        variables[key] = value  # later pairs see earlier ones, as in Studio
        written[key] = value
    return Next("next", written)


def split_based_on(sprint: Sprint, widget: State) -> Next:
    tested = sprint.render(widget.properties.get("input", ""))
    for transition in widget.transitions:
        if transition.event != "match" or not transition.conditions:
            continue
        if all(evaluate(c.type, tested, sprint.render(c.value)) for c in transition.conditions):
            # Several ``match`` transitions share the event name: the first that matches wins.
            return Next("match", None, explicit=True, target=transition.next)
    return Next("noMatch", None)
