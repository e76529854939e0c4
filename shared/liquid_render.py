"""Liquid rendering of widget properties against a Studio execution context.

Studio's rules: undefined variables render empty, loops stop after 15
iterations, a rendered string is at most 16 KB, and a template error fails the
widget with 81018 instead of crashing anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, ClassVar

import orjson
from liquid import BoundTemplate, Environment
from liquid.exceptions import LiquidError

__all__ = ["TemplateError", "render", "render_value"]

LOOP_LIMIT = 15
OUTPUT_LIMIT = 16 * 1024


class TemplateError(ValueError):
    """A property's Liquid could not be evaluated (Studio error 81018)."""

    code = 81018


def _to_json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return "null"


class StudioEnvironment(Environment):
    """python-liquid with Studio's limits and its ``to_json`` filter."""

    loop_iteration_limit: ClassVar[int | None] = LOOP_LIMIT
    output_stream_limit: ClassVar[int | None] = OUTPUT_LIMIT



_ENV = StudioEnvironment()
_ENV.filters["to_json"] = _to_json


@lru_cache(maxsize=4096)
def _compile(source: str) -> BoundTemplate:
    return _ENV.from_string(source)


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render one template string; plain strings are returned untouched."""
    if "{{" not in source and "{%" not in source:
        return source
    try:
        text = _compile(source).render(**context)
    except LiquidError as exc:
        raise TemplateError(f"Liquid error in {source[:80]!r}: {exc.args[0] if exc.args else exc}") from exc
    except (TypeError, ValueError, ZeroDivisionError, RecursionError) as exc:
        raise TemplateError(f"Liquid error in {source[:80]!r}: {exc}") from exc
    if len(text.encode()) > OUTPUT_LIMIT:
        raise TemplateError(f"rendered output exceeds {OUTPUT_LIMIT} bytes")
    return text


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Render every string inside ``value`` (lists and dicts recursively)."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    return value
