"""Readable output: aligned tables, one line per step, colour by meaning.

Colour goes through ``click.style``; ``click.echo`` drops it when the output is
not a terminal (a pipe, a file, a test), so scripts always get plain text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

__all__ = ["execution_status", "json_block", "step_line", "table", "timestamp"]

_STATUS_COLOURS = {"active": "yellow", "ended": "green", "published": "green", "draft": "cyan"}


def timestamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def execution_status(status: str | None) -> str:
    text = str(status or "")
    return click.style(text, fg=_STATUS_COLOURS.get(text))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell (measured without colour codes)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(click.unstyle(cell)))

    def line(cells: Sequence[str]) -> str:
        padded = [cell + " " * (widths[i] - len(click.unstyle(cell))) for i, cell in enumerate(cells)]
        return "  ".join(padded).rstrip()

    out = [click.style(line(headers), bold=True)]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


def step_line(number: int, step: Any) -> str:
    """``  3  split_on_event_type ─match→ save-booked   (split-based-on)``"""
    failed = step.name.isdigit()  # a limit or error step is named by its Studio error code
    event = click.style(step.name, fg="red" if failed else "magenta")
    target = step.transitioned_to
    target_text = click.style(target, fg="green", bold=True) if target == "Ended" else click.style(target, bold=True)
    kind = click.style(f"({step.type})", dim=True)
    return f"{number:>3}  {step.transitioned_from} ─{event}→ {target_text}  {kind}"


def json_block(value: Any, indent: str = "    ") -> str:
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return "\n".join(indent + line for line in text.splitlines())
