"""Run Subflow: decide whether the subflow can run and with what; ``frames.py`` runs it.

Properties:

* ``flow_sid`` (required): the subflow's flow.
* ``flow_revision`` (required): ``LatestPublished`` — the latest published
  revision; ``LatestDraft`` (the Console's "Latest Draft", [AI]'s JSON value)
  or ``LatestRevision`` (the REST API's name) — the latest revision, draft or
  published; or a revision number (``"3"``). Case-insensitive. The revision is
  fixed when the widget is entered: publishing the subflow meanwhile does not
  change a subflow already running.
* ``parameters``: ``[{key, value}]``, each value rendered (Liquid) against the
  parent's context and passed as ``trigger.parent.parameters.<key>``; values
  stay text unless ``parse_as_json`` (on the pair or the widget — the Console's
  "Parse as JSON object") is set and the value is a JSON object or array.

``failed`` without running anything, ``widgets.NAME.error`` saying why:

* ``81024: Subflow Error: …`` — no ``flow_sid``, the flow or the revision does
  not exist, the flow has no published revision (``LatestPublished``), the
  subflow itself contains a Run Subflow widget (Studio: a subflow may not run
  another subflow), or this widget runs inside a subflow already;
* ``81021: …`` — ``flow_revision`` is none of the above;
* ``81018: …`` — a parameter's Liquid failed.
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.flow import State
from shared.liquid_render import TemplateError

from ..sprint import Descend, Next, Sprint

__all__ = ["SUBFLOW_ERROR", "parameters", "revision_of", "run_subflow", "subflow_failed"]

SUBFLOW_ERROR = 81024
_LATEST_PUBLISHED = "latestpublished"
_LATEST = frozenset({"latestdraft", "latestrevision"})


def subflow_failed(reason: str) -> Next:
    """Run Subflow takes ``failed`` with Studio's 81024 "Subflow Error" and ``reason`` in ``widgets.NAME.error``."""
    return Next("failed", {"error": f"{SUBFLOW_ERROR}: Subflow Error: {reason}"})


def revision_of(sprint: Sprint, flow_sid: str, wanted: Any) -> int | None | str:
    """The revision number ``flow_revision`` names; ``None`` if the flow has no such revision, or a reason."""
    if isinstance(wanted, int) and not isinstance(wanted, bool):
        return wanted
    text = str(wanted or "").strip()
    if text.isdigit():
        return int(text)
    if text.lower() == _LATEST_PUBLISHED:
        return sprint.env.latest_revision(flow_sid, True)
    if text.lower() in _LATEST:
        return sprint.env.latest_revision(flow_sid, False)
    return f"81021: Flow revision must be an integer or enum(LatestPublished, LatestRevision), got {text!r}"


def parameters(sprint: Sprint, widget: State) -> dict[str, Any]:
    """The rendered parameters (raises ``TemplateError``)."""
    widget_json = bool(widget.properties.get("parse_as_json"))
    out: dict[str, Any] = {}
    for pair in widget.properties.get("parameters") or []:
        if not isinstance(pair, dict) or not str(pair.get("key", "")):
            continue
        value: Any = sprint.render(pair.get("value", ""))
        if widget_json or pair.get("parse_as_json"):
            try:
                parsed = orjson.loads(value)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict | list):
                value = parsed
        out[str(pair["key"])] = value
    return out


def run_subflow(sprint: Sprint, widget: State) -> Next | Descend:
    props = widget.properties
    if sprint.state.frames:
        return subflow_failed(f"{widget.name!r} runs inside a subflow; a subflow may not run another subflow")
    flow_sid = str(props.get("flow_sid") or "").strip()
    if not flow_sid:
        return subflow_failed("no flow_sid is set")
    revision = revision_of(sprint, flow_sid, props.get("flow_revision"))
    if isinstance(revision, str):
        return Next("failed", {"error": revision})
    if revision is None:
        return subflow_failed(f"the flow {flow_sid} has no revision {props.get('flow_revision')!r} "
                              "(no such flow, or none published)")
    definition = sprint.env.flows(flow_sid, revision)
    if definition is None:
        return subflow_failed(f"the flow {flow_sid} has no revision {revision}")
    nested = next((s.name for s in definition.states.values() if s.type == "run-subflow"), None)
    if nested is not None:
        return subflow_failed(f"the subflow {flow_sid} (revision {revision}) runs a subflow itself (widget "
                              f"{nested!r}); a subflow may not run another subflow")
    try:
        params = parameters(sprint, widget)
    except TemplateError as exc:
        return Next("failed", {"error": f"81018: {exc}"})
    return Descend(flow_sid, revision, definition, params)
