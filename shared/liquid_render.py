"""Liquid rendering of widget properties against a Studio execution context.

Studio's rules, and the choices made where Studio's documentation is silent:

* Undefined variables render empty (python-liquid's default ``Undefined``).
* "Liquid loops are restricted to 15 iterations" (Studio FAQ): every ``for`` and
  ``tablerow`` loop runs at most 15 times; further items are skipped, as if the
  loop had ``limit: 15``. Nested loops are capped one by one, and a sanity bound
  on the product of nested loops (15³ iterations) keeps a template from burning
  CPU; exceeding that bound is a template error.
* A rendered string is at most 16 KB (16,384 bytes of UTF-8). Longer output is a
  template error rather than a silent truncation, because a cut-off JSON body or
  message would be worse than a visible failure.
* Every template error (syntax, unknown filter, division by zero, the limits
  above) raises :class:`TemplateError` with a readable message naming the
  template; the processor turns it into Studio error 81018 for the widget and
  never crashes.
* ``to_json`` serialises any value as JSON (Studio-specific filter), and an
  object output directly (``{{flow.data}}``) renders as JSON too, not as a
  Python ``dict`` repr: real flows pass ``{{flow.data}}`` to Functions that
  parse it. Arrays keep Liquid's rule (items concatenated).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from itertools import islice
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

import orjson
from liquid import BoundTemplate, Environment
from liquid.builtin.expressions import LoopExpression
from liquid.builtin.output import Output, OutputNode
from liquid.builtin.tags.for_tag import ForTag
from liquid.builtin.tags.tablerow_tag import TablerowNode, TablerowTag
from liquid.exceptions import LiquidError
from liquid.stringify import to_liquid_string

if TYPE_CHECKING:
    from liquid.ast import Node
    from liquid.context import RenderContext
    from liquid.stream import TokenStream

__all__ = ["LOOP_LIMIT", "OUTPUT_LIMIT", "TemplateError", "render", "render_value"]

LOOP_LIMIT = 15
OUTPUT_LIMIT = 16 * 1024
#: Nested loops are capped one by one; their product is bounded too, so no template runs away.
NESTED_LOOP_LIMIT = LOOP_LIMIT**3


class TemplateError(ValueError):
    """A property's Liquid could not be evaluated (Studio error 81018)."""

    code = 81018


def _to_json(value: Any) -> str:
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return "null"


class _CappedLoop(LoopExpression):
    """A loop expression that yields at most ``LOOP_LIMIT`` items."""

    @classmethod
    def wrap(cls, expr: LoopExpression) -> _CappedLoop:
        return cls(expr.token, expr.identifier, expr.iterable, limit=expr.limit, offset=expr.offset,
                   reversed_=expr.reversed, cols=expr.cols)

    def evaluate(self, context: RenderContext) -> tuple[Iterator[object], int]:
        it, length = super().evaluate(context)
        return islice(it, LOOP_LIMIT), min(length, LOOP_LIMIT)

    async def evaluate_async(self, context: RenderContext) -> tuple[Iterator[object], int]:
        it, length = await super().evaluate_async(context)
        return islice(it, LOOP_LIMIT), min(length, LOOP_LIMIT)


class _CappedFor(ForTag):
    def parse(self, stream: TokenStream) -> Node:
        node = super().parse(stream)
        node.expression = _CappedLoop.wrap(node.expression)  # type: ignore[attr-defined]
        return node


class _CappedTablerow(TablerowTag):
    def parse(self, stream: TokenStream) -> TablerowNode:
        node = super().parse(stream)
        node.expression = _CappedLoop.wrap(node.expression)
        return node


def _stringify(value: Any, autoescape: bool) -> str:
    if isinstance(value, dict):  # not any Mapping: an ``Undefined`` is one and must render empty
        return _to_json(value)
    return to_liquid_string(value, autoescape)


class _JsonOutputNode(OutputNode):
    """``{{ … }}`` that renders an object as JSON."""

    def render_to_output(self, context: RenderContext, buffer: TextIO) -> int:
        return buffer.write(_stringify(self.expression.evaluate(context), context.autoescape))

    async def render_to_output_async(self, context: RenderContext, buffer: TextIO) -> int:
        return buffer.write(_stringify(await self.expression.evaluate_async(context), context.autoescape))


class _JsonOutput(Output):
    node_class = _JsonOutputNode


class StudioEnvironment(Environment):
    """python-liquid with Studio's limits and its ``to_json`` filter."""

    loop_iteration_limit: ClassVar[int | None] = NESTED_LOOP_LIMIT
    output_stream_limit: ClassVar[int | None] = OUTPUT_LIMIT

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=extra)
        self.tags["output"] = _JsonOutput(self)
        self.tags["for"] = _CappedFor(self)
        self.tags["tablerow"] = _CappedTablerow(self)
        self.filters["to_json"] = _to_json


_ENV = StudioEnvironment()


@lru_cache(maxsize=4096)
def _compile(source: str) -> BoundTemplate:
    return _ENV.from_string(source)


def _excerpt(source: str) -> str:
    return source if len(source) <= 80 else source[:77] + "..."


def _describe(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    if text == "output stream limit reached":
        return f"the rendered text exceeds Studio's limit of {OUTPUT_LIMIT} bytes"
    if text == "loop iteration limit reached":
        return f"nested loops exceed {NESTED_LOOP_LIMIT} iterations"
    return text


def render(source: str, context: Mapping[str, Any]) -> str:
    """Render one template string; plain strings are returned untouched.

    Raises :class:`TemplateError` for any error in the template or when the
    output exceeds ``OUTPUT_LIMIT`` bytes.
    """
    if "{{" not in source and "{%" not in source:
        return source
    try:
        text = _compile(source).render(**context)
    except LiquidError as exc:
        raise TemplateError(f"Liquid error in {_excerpt(source)!r}: {_describe(exc)}") from exc
    except (TypeError, ValueError, ArithmeticError, RecursionError, AttributeError, KeyError, IndexError) as exc:
        raise TemplateError(f"Liquid error in {_excerpt(source)!r}: {_describe(exc)}") from exc
    if len(text) > OUTPUT_LIMIT // 4 and len(text.encode()) > OUTPUT_LIMIT:
        raise TemplateError(f"Liquid error in {_excerpt(source)!r}: "
                            f"the rendered text exceeds Studio's limit of {OUTPUT_LIMIT} bytes")
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
