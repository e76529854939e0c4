"""History records → Studio's Event Streams events (CloudEvents 1.0, JSON), a pure function.

Studio publishes three event types (``Studio.FlowExecutionEvent`` and
``Studio.FlowStepEvent`` schemas)::

    com.twilio.studio.flow.execution.started   data: execution_sid, account_sid, flow_sid, contact_channel_address,
    com.twilio.studio.flow.execution.ended           status, ended_reason (ended only), date_created, date_updated,
                                                     started_by, flow_revision
    com.twilio.studio.flow.step.ended          data: step_sid, execution_sid, account_sid, flow_sid, name,
                                                     transitioned_from, transitioned_to, widget_type,
                                                     parent_step_sid (subflow steps), date_created, date_updated

Every event carries ``specversion`` ``1.0``, ``type``, ``source``
(``{public base URL}/v2/Flows/{FlowSid}/Executions/{ExecutionSid}``), ``id``,
``time``, ``datacontenttype`` ``application/json`` and ``dataschema``
(``https://events-schemas.twilio.com/Studio.FlowExecutionEvent/1`` or
``…/Studio.FlowStepEvent/1``). Ids are derived from the execution or step sid,
so an event published twice (history is read at least once) has the same id
and consumers can drop the repeat.

A history batch (one sprint of one execution) yields, in order: ``started``
when it holds the execution's first step (the trigger's, index 0), one
``step.ended`` per step, and ``ended`` when its snapshot is ended.
``ended_reason``: ``FLOW_END`` for an execution that ran to its end, else the
engine's reason upper-cased (``ENDED`` by the REST API, ``EXPIRED``,
``FAILED``, ``LOOP_LIMIT``, ``STEP_LIMIT``, ``CALL_ENDED``, ``DELETED``).
Step context (widget variables, possibly personal data) is not in the events;
read it from the Steps API.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from shared.ids import derived_sid
from shared.messages import DecodeError, ExecutionRecord, HistoryBatch, StepRecord, decode

__all__ = ["EXECUTION_ENDED", "EXECUTION_STARTED", "STEP_ENDED", "events_of", "events_of_record"]

EXECUTION_STARTED = "com.twilio.studio.flow.execution.started"
EXECUTION_ENDED = "com.twilio.studio.flow.execution.ended"
STEP_ENDED = "com.twilio.studio.flow.step.ended"
EXECUTION_SCHEMA = "https://events-schemas.twilio.com/Studio.FlowExecutionEvent/1"
STEP_SCHEMA = "https://events-schemas.twilio.com/Studio.FlowStepEvent/1"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(type_: str, schema: str, event_id: str, source: str, time: float, data: dict[str, Any]) -> dict[str, Any]:
    return {"specversion": "1.0", "type": type_, "source": source, "id": event_id, "time": _iso(time),
            "datacontenttype": "application/json", "dataschema": schema, "data": data}


def _source(base_url: str, flow_sid: str, execution_sid: str) -> str:
    return f"{base_url.rstrip('/')}/v2/Flows/{flow_sid}/Executions/{execution_sid}"


def _execution_data(execution: Mapping[str, Any], account_sid: str, ended: bool) -> dict[str, Any]:
    data = {"execution_sid": execution["sid"], "account_sid": account_sid, "flow_sid": execution["flow_sid"],
            "contact_channel_address": execution.get("contact_address", ""),
            "status": "ended" if ended else "active",
            "date_created": _iso(execution["date_created"]), "date_updated": _iso(execution["date_updated"]),
            "started_by": execution.get("initiated_by", ""), "flow_revision": execution.get("revision", 0)}
    if ended:
        reason = str(execution.get("end_reason") or "completed")
        data["ended_reason"] = "FLOW_END" if reason == "completed" else reason.upper()
    return data


def _step_data(step: Mapping[str, Any], account_sid: str) -> dict[str, Any]:
    data = {"step_sid": step["sid"], "execution_sid": step["execution_sid"], "account_sid": account_sid,
            "flow_sid": step["flow_sid"], "name": step["name"], "transitioned_from": step["transitioned_from"],
            "transitioned_to": step["transitioned_to"], "widget_type": step.get("type", ""),
            "date_created": _iso(step["date_created"]), "date_updated": _iso(step["date_updated"])}
    if step.get("parent_step_sid"):
        data["parent_step_sid"] = step["parent_step_sid"]
    return data


def events_of(batch: HistoryBatch, account_sid: str, base_url: str) -> list[dict[str, Any]]:
    """The events one history batch stands for, in the order they happened."""
    execution = batch.execution if isinstance(batch.execution, dict) else None
    steps = [s for s in batch.steps if isinstance(s, dict)] if isinstance(batch.steps, list) else []
    events: list[dict[str, Any]] = []
    if execution is not None and any(s.get("index") == 0 for s in steps):
        source = _source(base_url, execution["flow_sid"], execution["sid"])
        events.append(_event(EXECUTION_STARTED, EXECUTION_SCHEMA, derived_sid("EV", execution["sid"], "started"),
                             source, execution["date_created"], _execution_data(execution, account_sid, False)))
    for step in steps:
        source = _source(base_url, step["flow_sid"], step["execution_sid"])
        events.append(_event(STEP_ENDED, STEP_SCHEMA, derived_sid("EV", step["sid"]), source, step["date_updated"],
                             _step_data(step, account_sid)))
    if execution is not None and execution.get("status") == "ended":
        source = _source(base_url, execution["flow_sid"], execution["sid"])
        events.append(_event(EXECUTION_ENDED, EXECUTION_SCHEMA, derived_sid("EV", execution["sid"], "ended"),
                             source, execution["date_updated"], _execution_data(execution, account_sid, True)))
    return events


def events_of_record(value: bytes | None, account_sid: str, base_url: str) -> list[dict[str, Any]]:
    """The events of one record of the history topic; tombstones and anything undecodable give none."""
    if not value:
        return []
    try:
        message = decode(value)
    except DecodeError:
        return []
    if isinstance(message, HistoryBatch):
        return events_of(message, account_sid, base_url)
    if isinstance(message, ExecutionRecord):  # a lone snapshot (e.g. written by the ingress)
        return events_of(HistoryBatch(_fields(message), []), account_sid, base_url)
    if isinstance(message, StepRecord):
        return events_of(HistoryBatch(None, [_fields(message)]), account_sid, base_url)
    return []


def _fields(record: ExecutionRecord | StepRecord) -> dict[str, Any]:
    return asdict(record)
