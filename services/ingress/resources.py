"""Studio v2 JSON shapes for flows, revisions, executions, steps and contexts."""

from __future__ import annotations

from typing import Any

from shared.messages import ExecutionRecord, FlowRecord, StepRecord
from shared.timefmt import iso8601

__all__ = ["Urls", "execution_context_json", "execution_json", "flow_json", "step_context_json", "step_json"]


class Urls:
    """Absolute URLs on the configured public base URL."""

    def __init__(self, base: str, account_sid: str) -> None:
        self.base = base.rstrip("/")
        self.account_sid = account_sid

    def flow(self, sid: str) -> str:
        return f"{self.base}/v2/Flows/{sid}"

    def webhook(self, sid: str) -> str:
        return f"{self.base}/v1/Accounts/{self.account_sid}/Flows/{sid}"

    def execution(self, flow_sid: str, sid: str) -> str:
        return f"{self.flow(flow_sid)}/Executions/{sid}"

    def step(self, flow_sid: str, execution_sid: str, sid: str) -> str:
        return f"{self.execution(flow_sid, execution_sid)}/Steps/{sid}"


def flow_json(record: FlowRecord, urls: Urls, created: float, full: bool = True, revision_view: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "sid": record.sid,
        "account_sid": urls.account_sid,
        "author_sid": record.author_sid or None,
        "friendly_name": record.friendly_name,
        "definition": record.definition if full else None,
        "status": record.status,
        "revision": record.revision,
        "commit_message": record.commit_message or None,
        "valid": record.valid if full else None,
        "errors": record.errors if full else None,
        "date_created": iso8601(created),
        "date_updated": iso8601(record.date_updated),
        "url": urls.flow(record.sid) + (f"/Revisions/{record.revision}" if revision_view else ""),
    }
    if not revision_view:
        body["warnings"] = record.warnings if full else None
        body["webhook_url"] = urls.webhook(record.sid)
        body["links"] = {
            "test_users": f"{urls.flow(record.sid)}/TestUsers",
            "revisions": f"{urls.flow(record.sid)}/Revisions",
            "executions": f"{urls.flow(record.sid)}/Executions",
        }
    return body


def execution_json(record: ExecutionRecord, urls: Urls) -> dict[str, Any]:
    url = urls.execution(record.flow_sid, record.sid)
    return {
        "sid": record.sid,
        "account_sid": urls.account_sid,
        "flow_sid": record.flow_sid,
        "contact_sid": None,
        "contact_channel_address": record.contact_address,
        "context": record.context,
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


def step_json(record: StepRecord, urls: Urls) -> dict[str, Any]:
    url = urls.step(record.flow_sid, record.execution_sid, record.sid)
    return {
        "sid": record.sid,
        "account_sid": urls.account_sid,
        "flow_sid": record.flow_sid,
        "execution_sid": record.execution_sid,
        "parent_step_sid": None,
        "name": record.name,
        "context": record.context,
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
