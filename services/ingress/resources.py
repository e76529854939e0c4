"""Studio v2 JSON shapes for flows, revisions, test users, executions, steps and contexts.

Field names, types and nullability follow the Studio v2 OpenAPI description
(``studio.v2.flow``, ``…flow_revision``, ``…test_user``, ``…execution``,
``…execution_context``, ``…execution_step``, ``…execution_step_context``).
Every ``url`` and ``links`` entry is absolute on the configured public base
URL. As in Studio's list responses, list items carry ``null`` for the bulky
fields (``definition``/``valid``/``errors``/``warnings`` of flows and
revisions, ``context`` of executions and steps): fetch the instance for them.
"""

from __future__ import annotations

from typing import Any

from shared.messages import ExecutionRecord, FlowRecord, StepRecord
from shared.timefmt import iso8601

__all__ = [
    "Urls",
    "execution_context_json",
    "execution_json",
    "flow_json",
    "revision_json",
    "step_context_json",
    "step_json",
    "test_users_json",
]


class Urls:
    """Absolute URLs on the configured public base URL."""

    def __init__(self, base: str, account_sid: str) -> None:
        self.base = base.rstrip("/")
        self.account_sid = account_sid

    @property
    def flows(self) -> str:
        return f"{self.base}/v2/Flows"

    def flow(self, sid: str) -> str:
        return f"{self.base}/v2/Flows/{sid}"

    def webhook(self, sid: str) -> str:
        return f"{self.base}/v1/Accounts/{self.account_sid}/Flows/{sid}"

    def executions(self, flow_sid: str) -> str:
        return f"{self.flow(flow_sid)}/Executions"

    def execution(self, flow_sid: str, sid: str) -> str:
        return f"{self.executions(flow_sid)}/{sid}"

    def step(self, flow_sid: str, execution_sid: str, sid: str) -> str:
        return f"{self.execution(flow_sid, execution_sid)}/Steps/{sid}"


def _revision_fields(record: FlowRecord, urls: Urls, created: float, full: bool) -> dict[str, Any]:
    return {
        "sid": record.sid,
        "account_sid": urls.account_sid,
        "author_sid": record.author_sid or None,
        "friendly_name": record.friendly_name,
        "definition": record.definition if full else None,
        "status": record.status,
        "revision": record.revision,
        "commit_message": record.commit_message or None,
        "valid": record.valid if full else None,
        "errors": list(record.errors or []) if full else None,
        "date_created": iso8601(created),
        "date_updated": iso8601(record.date_updated),
    }


def flow_json(record: FlowRecord, urls: Urls, created: float, full: bool = True) -> dict[str, Any]:
    """The Flow resource; ``record`` is the flow's latest revision, ``created`` when revision 1 was made."""
    flow_url = urls.flow(record.sid)
    return {
        **_revision_fields(record, urls, created, full),
        "warnings": list(record.warnings or []) if full else None,
        "webhook_url": urls.webhook(record.sid),
        "url": flow_url,
        "links": {
            "test_users": f"{flow_url}/TestUsers",
            "revisions": f"{flow_url}/Revisions",
            "executions": f"{flow_url}/Executions",
        },
    }


def revision_json(record: FlowRecord, urls: Urls, full: bool = True) -> dict[str, Any]:
    """The Flow Revision resource: a Flow without ``webhook_url``, ``warnings`` and ``links``."""
    return {**_revision_fields(record, urls, record.date_created, full),
            "url": f"{urls.flow(record.sid)}/Revisions/{record.revision}"}


def test_users_json(sid: str, users: list[str], urls: Urls) -> dict[str, Any]:
    return {"sid": sid, "test_users": list(users), "url": f"{urls.flow(sid)}/TestUsers"}


def execution_json(record: ExecutionRecord, urls: Urls, full: bool = True) -> dict[str, Any]:
    url = urls.execution(record.flow_sid, record.sid)
    return {
        "sid": record.sid,
        "account_sid": urls.account_sid,
        "flow_sid": record.flow_sid,
        "contact_sid": None,  # deprecated in Studio in favour of contact_channel_address
        "contact_channel_address": record.contact_address,
        "context": record.context if full else None,
        "status": record.status,
        "date_created": iso8601(record.date_created),
        "date_updated": iso8601(record.date_updated),
        "initiated_by": record.initiated_by,
        "flow_version": record.revision,
        "url": url,
        "links": {"steps": f"{url}/Steps", "execution_context": f"{url}/Context"},
    }


def execution_context_json(record: ExecutionRecord, urls: Urls) -> dict[str, Any]:
    url = urls.execution(record.flow_sid, record.sid)
    return {"account_sid": urls.account_sid, "context": record.context, "flow_sid": record.flow_sid,
            "execution_sid": record.sid, "url": f"{url}/Context"}


def step_json(record: StepRecord, urls: Urls, full: bool = True) -> dict[str, Any]:
    url = urls.step(record.flow_sid, record.execution_sid, record.sid)
    return {
        "sid": record.sid,
        "account_sid": urls.account_sid,
        "flow_sid": record.flow_sid,
        "execution_sid": record.execution_sid,
        "parent_step_sid": record.parent_step_sid or None,
        "name": record.name,
        "context": record.context if full else None,
        "transitioned_from": record.transitioned_from,
        "transitioned_to": record.transitioned_to,
        "type": record.type,
        "date_created": iso8601(record.date_created),
        "date_updated": iso8601(record.date_updated),
        "url": url,
        "links": {"step_context": f"{url}/Context"},
    }


def step_context_json(record: StepRecord, urls: Urls) -> dict[str, Any]:
    url = urls.step(record.flow_sid, record.execution_sid, record.sid)
    return {"account_sid": urls.account_sid, "context": record.context, "execution_sid": record.execution_sid,
            "flow_sid": record.flow_sid, "step_sid": record.sid, "url": f"{url}/Context"}
