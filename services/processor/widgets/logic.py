"""Widgets that only compute: Set Variables and Split Based On…"""

from __future__ import annotations

import re
from typing import Any

from shared.flow import State

from ..operators import evaluate
from ..sprint import Next, Sprint

__all__ = ["set_variables", "split_based_on"]

_INT = re.compile(r"^[+-]?\d{1,15}$")
_FLOAT = re.compile(r"^[+-]?\d+\.\d+$")


def _typed(text: str) -> Any:
    """Studio keeps a numeric-looking value numeric, so ``| plus: 1`` and comparisons work."""
    stripped = text.strip()
    if _INT.match(stripped):
        return int(stripped)
    if _FLOAT.match(stripped):
        return float(stripped)
    return stripped


def set_variables(sprint: Sprint, widget: State) -> Next:
    variables = sprint.state.context.setdefault("flow", {}).setdefault("variables", {})
    written: dict[str, Any] = {}
    for pair in widget.properties.get("variables") or []:
        key = str(pair.get("key", ""))
        if not key:
            continue
        value = _typed(sprint.render(pair.get("value", "")))
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
