"""``/v2/Flows``: create, list, fetch, update, delete, and ``POST /v2/Flows/Validate``.

Every revision of a flow is one ``FlowRecord`` in the compacted ``flows`` topic
(key ``FW…/revision``); the flow is its highest revision. Writes are published
and acknowledged before the answer, then applied to this instance's catalog at
once (read-your-writes); other instances see them within their poll interval.
Writes to one flow through two ingress replicas at the same instant are
last-writer-wins per revision key (see the README).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web
from sortedcontainers import SortedList

from shared.flow_catalog import flow_key
from shared.ids import is_sid, new_sid
from shared.messages import EndRequested, FlowRecord, encode

from .deps import DEPS, Deps
from .errors import ApiError
from .flow_changes import parse_author_sid, parse_status, plan_update, validated_definition
from .forms import form, page_request, required
from .paging import envelope, select
from .resources import flow_json

__all__ = ["CROSS_REPLICA_GRACE_SECONDS", "created_at", "find_flow", "json_response", "routes", "tombstone_history", "write_flow"]

routes = web.RouteTableDef()


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


#: A sid this replica has never seen may have been created a moment ago through another ingress replica (the
#: topics reach every replica within tens of milliseconds): wait up to this long for it before answering 404.
CROSS_REPLICA_GRACE_SECONDS = 1.0


async def find_flow(deps: Deps, sid: str) -> FlowRecord:
    """The flow's latest revision, or Twilio's 404 (after the cross-replica grace for a well-formed sid)."""
    record = deps.catalog.latest(sid)
    if record is None and is_sid(sid, "FW"):
        await deps.catalog.wait_for(sid, 1, CROSS_REPLICA_GRACE_SECONDS)
        record = deps.catalog.latest(sid)
    if record is None:
        raise ApiError(404, 20404, f"The requested resource /Flows/{sid} was not found")
    return record


def created_at(deps: Deps, sid: str) -> float:
    """A flow's ``date_created``: when its first (oldest kept) revision was made."""
    revisions = deps.catalog.revisions(sid)
    return min(r.date_created for r in revisions) if revisions else deps.clock.now()


async def write_flow(deps: Deps, record: FlowRecord) -> None:
    """Publish one revision record, wait for the broker, apply it here (read-your-writes)."""
    key = flow_key(record.sid, record.revision)
    offset = await deps.publish("flows", key.decode(), record)
    deps.catalog.apply_written(key, encode(record), offset)


async def tombstone_history(deps: Deps, keys: list[str]) -> None:
    """Publish tombstones for these history keys (in order, acknowledged) and apply them here."""
    topic = deps.settings.topic("history")
    pending = [await deps.producer.send(topic, None, key=key.encode()) for key in keys]
    await asyncio.gather(*pending)
    for key in keys:
        await deps.history.apply_local(key.encode(), None)


@routes.post("/v2/Flows/Validate")
async def validate_flow(request: web.Request) -> web.Response:
    """``{"valid": true}``, or 400 with error 81022 and ``details.errors[]`` naming each property path."""
    deps = request.app[DEPS]
    data = await form(request, deps.settings.max_request_body_bytes)
    if data.get("Status"):
        parse_status(data["Status"])
    validated_definition(required(data, "Definition"), deps.settings.max_flow_definition_bytes)
    return json_response({"valid": True})


@routes.post("/v2/Flows")
async def create_flow(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    data = await form(request, deps.settings.max_request_body_bytes)
    name = required(data, "FriendlyName")
    status = parse_status(required(data, "Status"))
    definition = validated_definition(required(data, "Definition"), deps.settings.max_flow_definition_bytes)
    now = deps.clock.now()
    record = FlowRecord(sid=new_sid("FW"), revision=1, friendly_name=name, status=status, definition=definition,
                        commit_message=data.get("CommitMessage", ""), valid=True, errors=[], warnings=[],
                        date_created=now, date_updated=now, author_sid=parse_author_sid(data.get("AuthorSid", "")))
    await write_flow(deps, record)
    return json_response(flow_json(record, deps.urls, now), 201)


@routes.get("/v2/Flows")
async def list_flows(request: web.Request) -> web.Response:
    """Newest flow first; ``definition``/``valid``/``errors``/``warnings`` are null as in Studio's lists."""
    deps = request.app[DEPS]
    page = page_request(request, (float, str))
    latest = {r.sid: r for r in deps.catalog.flows()}
    index = SortedList((-created_at(deps, sid), sid) for sid in latest)
    window = select(index, page)
    items = [flow_json(latest[sid], deps.urls, -created, full=False) for created, sid in window.keys]
    return json_response(envelope("flows", items, window, deps.urls.flows, page))


@routes.get("/v2/Flows/{sid}")
async def fetch_flow(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    record = await find_flow(deps, request.match_info["sid"])
    return json_response(flow_json(record, deps.urls, created_at(deps, record.sid)))


@routes.post("/v2/Flows/{sid}")
async def update_flow(request: web.Request) -> web.Response:
    """``Status`` required; ``Definition`` replaces the whole definition. See ``flow_changes`` for revisions."""
    deps = request.app[DEPS]
    latest = await find_flow(deps, request.match_info["sid"])
    data = await form(request, deps.settings.max_request_body_bytes)
    status = parse_status(required(data, "Status"))
    definition = None
    if data.get("Definition"):
        definition = validated_definition(data["Definition"], deps.settings.max_flow_definition_bytes)
    record = plan_update(latest, status, definition, data.get("FriendlyName") or None,
                         data.get("CommitMessage"), deps.clock.now(), parse_author_sid(data.get("AuthorSid", "")))
    await write_flow(deps, record)
    return json_response(flow_json(record, deps.urls, created_at(deps, record.sid)))


@routes.delete("/v2/Flows/{sid}")
async def delete_flow(request: web.Request) -> web.Response:
    """Delete every revision (a tombstone each), end its active executions and forget their history.

    The flow's tombstones go first, so no new execution can start on this
    instance; active executions get an ``EndRequested`` (the processor ends
    them even without the definition); then every execution and step of the
    flow sid is tombstoned in ``history``: one record that drops every execution and step of the flow on
    every replica. Records of those executions that the processor publishes afterwards are dropped too
    (``history_store.py``: deleted stays deleted).
    """
    deps = request.app[DEPS]
    sid = request.match_info["sid"]
    await find_flow(deps, sid)
    for revision in deps.catalog.revisions(sid):
        key = flow_key(sid, revision.revision)
        offset = await deps.publish("flows", key.decode(), None)
        deps.catalog.apply_written(key, None, offset)
    now = deps.clock.now()
    for execution_sid in await deps.history.execution_sids(sid, status="active"):
        execution = await deps.history.execution(execution_sid)
        if execution is not None and execution.status == "active":
            await deps.publish("events", execution.route,
                               EndRequested(execution.sid, execution.route, now, reason="deleted"))
    await tombstone_history(deps, [sid])
    return web.Response(status=204)
