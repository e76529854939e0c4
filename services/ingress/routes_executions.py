"""``/v2/Flows/{FlowSid}/Executions``: create, list, fetch, end, delete; Execution Context; Steps; Step Context.

Creating and ending go through the processor (an event on ``events``, the
answer on this instance's ``replies`` partition). Every read is answered from
the history store (``history_store.py``: SQLite on local disk by default);
nothing here waits on the processor for a read.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web
from sortedcontainers import SortedList

from shared.ids import is_sid, new_sid
from shared.messages import EndRequested, ExecutionRecord, Reply, StartExecution, StepRecord, encode
from shared.timefmt import parse_iso8601

from .deps import DEPS, Deps
from .errors import ApiError
from .forms import form, page_request, required
from .history_store import ListQuery
from .idempotency import execution_sid_for, token_of, wait_caught_up
from .paging import envelope, select, window_of
from .resources import execution_context_json, execution_json, step_context_json, step_json
from .routes_flows import CROSS_REPLICA_GRACE_SECONDS, find_flow, json_response, tombstone_history

__all__ = ["route_key", "routes"]

routes = web.RouteTableDef()

#: How long a read waits for records it knows are on their way (the ended snapshot after an end, steps
#: the execution snapshot already counts) before answering with what it has.
_SETTLE_SECONDS = 5.0


def route_key(flow_sid: str, contact: str) -> str:
    """Events of one contact in one flow share a key, so one processor partition owns them."""
    return f"{flow_sid}:{contact}"


async def _await_reply(deps: Deps, reply_id: str, future: asyncio.Future[Reply]) -> Reply:
    try:
        return await asyncio.wait_for(future, deps.settings.rest_reply_budget_seconds)
    except TimeoutError as exc:
        raise ApiError(503, 20503, "The execution engine did not answer in time; retry later") from exc
    finally:
        deps.replies.forget(reply_id)


#: While a create waits for the processor's answer, how often it also looks for the execution in the history:
#: a start the processor applied may have its answer delayed or lost (a zombie that woke up, a reply partition
#: moving), while its record reaches every replica through the history topic.
_HISTORY_LOOK_SECONDS = 1.0


async def _await_start(deps: Deps, reply_id: str, future: asyncio.Future[Reply], sid: str,
                       flow_sid: str) -> Reply | ExecutionRecord | None:
    """The processor's answer to a start, or the execution's record once the history has it, whichever comes
    first within the REST reply budget; None when neither came."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deps.settings.rest_reply_budget_seconds
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                return await asyncio.wait_for(asyncio.shield(future), min(remaining, _HISTORY_LOOK_SECONDS))
            except TimeoutError:
                record = await deps.history.execution(sid)
                if record is not None and record.flow_sid == flow_sid:
                    return record
    finally:
        deps.replies.forget(reply_id)


async def _created_before(deps: Deps, flow_sid: str, sid: str) -> ExecutionRecord | None:
    """The execution a create with this (derived) sid already started, from this replica's history copy once
    it has caught up with the topic (``idempotency.py``)."""
    if deps.history_ends is not None:
        await wait_caught_up(deps.history.offsets, deps.history_ends, deps.history.changed, _CATCH_UP_SECONDS)
    record = await deps.history.execution(sid)
    return record if record is not None and record.flow_sid == flow_sid else None


#: How long an idempotent create waits for this replica's history copy to catch up before looking in it
#: (normally milliseconds; a replica that stays behind longer still has the processor's own check).
_CATCH_UP_SECONDS = 3.0


def _parameters(text: str) -> dict[str, Any]:
    """``Parameters``: a JSON object sent as a string; it becomes ``flow.data``."""
    if not text:
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, 20001, f"Parameters must be a JSON object encoded as a string: {exc}") from exc
    if not isinstance(value, dict):
        raise ApiError(400, 20001, "Parameters must be a JSON object")
    return value


@routes.post("/v2/Flows/{flow_sid}/Executions")
async def create_execution(request: web.Request) -> web.Response:
    """Start an execution; it runs the latest published revision, or the latest one if ``To`` is a test user."""
    deps = request.app[DEPS]
    flow_sid = request.match_info["flow_sid"]
    data = await form(request, deps.settings.max_request_body_bytes)
    to, from_ = required(data, "To"), required(data, "From")
    await find_flow(deps, flow_sid)
    revision = deps.catalog.revision_for(flow_sid, to)
    if revision is None:
        raise ApiError(400, 20001, f"Flow {flow_sid} has no published revision: publish one, or add {to} "
                                   "to the flow's TestUsers to run its latest draft")
    parameters = _parameters(data.get("Parameters", ""))
    try:
        token = token_of(request.headers)
    except ValueError as exc:
        raise ApiError(400, 20001, str(exc)) from exc
    sid = execution_sid_for(deps.settings.account_sid, flow_sid, to, token)
    if token is not None:
        existing = await _created_before(deps, flow_sid, sid)
        if existing is not None:  # a retry of a create that took effect: the same execution, nothing new runs
            return json_response(execution_json(existing, deps.urls), 201)
    reply_id, future = deps.replies.expect()
    event = StartExecution(execution_sid=sid, flow_sid=flow_sid, revision=revision.revision,
                           route=route_key(flow_sid, to), contact_address=to, channel_address=from_,
                           flow_data=parameters, created_at=deps.clock.now(), initiated_by=new_sid("RQ"),
                           reply_id=reply_id, reply_partition=deps.replies.partition)
    await deps.publish("events", event.route, event)
    answer = await _await_start(deps, reply_id, future, sid, flow_sid)
    if answer is None:
        # The start is in Kafka and will be applied once its partition has an owner again; it may still be
        # refused then (another execution of this contact active). Name it, so the client can look or retry.
        retry = ("retrying with the same idempotency token answers that execution" if token is not None
                 else "send I-Twilio-Idempotency-Token to make a retry safe")
        raise ApiError(503, 20503, f"The execution engine did not answer in time; execution {sid} may still "
                                   f"start ({retry})")
    if isinstance(answer, ExecutionRecord):
        return json_response(execution_json(answer, deps.urls), 201)
    reply = answer
    if reply.status == "conflict":
        raise ApiError(409, reply.error_code or 20409, reply.error_message)
    if reply.status != "ok" or not isinstance(reply.execution, dict):
        raise ApiError(404 if reply.status == "not_found" else 500, reply.error_code or 20500,
                       reply.error_message or "the execution could not be created")
    record = ExecutionRecord(**reply.execution)
    await deps.history.apply_local(record.sid.encode(), encode(record))  # read-your-writes: listed at once
    return json_response(execution_json(record, deps.urls), 201)


async def _find_execution(deps: Deps, flow_sid: str, sid: str) -> ExecutionRecord:
    """The execution, or 404; a sid never seen here gets the cross-replica grace (deleted/expired ones do not)."""
    record = await deps.history.execution(sid)
    if record is None and is_sid(sid, "FN") and not await deps.history.known(sid):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CROSS_REPLICA_GRACE_SECONDS
        while record is None and loop.time() < deadline:
            await deps.history.changed(deadline - loop.time())
            record = await deps.history.execution(sid)
    if record is None or record.flow_sid != flow_sid:
        raise ApiError(404, 20404, f"The requested resource /Flows/{flow_sid}/Executions/{sid} was not found")
    return record


def _key(key: tuple[Any, ...]) -> tuple[float, str]:
    return (float(key[0]), str(key[1]))


def _date_filter(request: web.Request, name: str) -> float | None:
    text = request.query.get(name, "")
    if not text:
        return None
    try:
        return parse_iso8601(text)
    except ValueError as exc:
        raise ApiError(400, 20001, f"{name} must be an ISO 8601 date-time, not {text!r}") from exc


@routes.get("/v2/Flows/{flow_sid}/Executions")
async def list_executions(request: web.Request) -> web.Response:
    """Newest first. Filters: ``Status`` (``active``/``ended``), ``DateCreatedFrom``/``DateCreatedTo`` (inclusive).

    Keyset paging over the store's index ``(flow, -date_created, sid)``: the date range and the page
    token are bounds on that index, ``Status=active`` reads a partial index of only the active
    executions, so a page costs the same however deep the client pages.
    """
    deps = request.app[DEPS]
    flow_sid = request.match_info["flow_sid"]
    await find_flow(deps, flow_sid)
    page = page_request(request, (float, str))
    status = request.query.get("Status") or request.query.get("status") or None
    if status is not None and status not in ("active", "ended"):
        raise ApiError(400, 20001, f"Status must be 'active' or 'ended', not {status!r}")
    since, until = _date_filter(request, "DateCreatedFrom"), _date_filter(request, "DateCreatedTo")
    filters = {name: value for name, value in (("Status", status), ("DateCreatedFrom", request.query.get("DateCreatedFrom")),
                                                ("DateCreatedTo", request.query.get("DateCreatedTo"))) if value}
    cursor = page.cursor
    found = await deps.history.list_executions(ListQuery(
        flow_sid, status, page.size + 1,
        after=_key(cursor.key) if cursor is not None and cursor.forward else None,
        before=_key(cursor.key) if cursor is not None and not cursor.forward else None,
        low=None if until is None else (-until, ""), high=None if since is None else (-since, "\uffff")))
    window = window_of(found.keys, page)
    items = [execution_json(found.records[sid], deps.urls, full=False) for _, sid in window.keys]
    return json_response(envelope("executions", items, window, deps.urls.executions(flow_sid), page, filters))


@routes.get("/v2/Flows/{flow_sid}/Executions/{sid}")
async def fetch_execution(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    record = await _find_execution(deps, request.match_info["flow_sid"], request.match_info["sid"])
    return json_response(execution_json(record, deps.urls))


@routes.get("/v2/Flows/{flow_sid}/Executions/{sid}/Context")
async def fetch_execution_context(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    record = await _find_execution(deps, request.match_info["flow_sid"], request.match_info["sid"])
    return json_response(execution_context_json(record, deps.urls))


async def _end(deps: Deps, record: ExecutionRecord) -> ExecutionRecord:
    """Ask the processor to end an active execution; return the ended snapshot once it is here."""
    if record.status != "active":
        return record
    reply_id, future = deps.replies.expect()
    await deps.publish("events", record.route, EndRequested(record.sid, record.route, deps.clock.now(),
                                                            reply_id=reply_id, reply_partition=deps.replies.partition))
    await _await_reply(deps, reply_id, future)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _SETTLE_SECONDS
    while loop.time() < deadline:  # the ended snapshot follows the reply on the history topic
        current = await deps.history.execution(record.sid)
        if current is None or current.status == "ended":
            return current or record
        await deps.history.changed(0.1)
    return await deps.history.execution(record.sid) or record


@routes.post("/v2/Flows/{flow_sid}/Executions/{sid}")
async def update_execution(request: web.Request) -> web.Response:
    """End an active execution (``Status=ended``); ending an ended one answers it unchanged."""
    deps = request.app[DEPS]
    record = await _find_execution(deps, request.match_info["flow_sid"], request.match_info["sid"])
    data = await form(request, deps.settings.max_request_body_bytes)
    if required(data, "Status") != "ended":
        raise ApiError(400, 20001, f"Status must be 'ended', not {data['Status']!r}")
    return json_response(execution_json(await _end(deps, record), deps.urls))


@routes.delete("/v2/Flows/{flow_sid}/Executions/{sid}")
async def delete_execution(request: web.Request) -> web.Response:
    """Delete the execution and all its steps: end it first if active, then tombstone steps and execution."""
    deps = request.app[DEPS]
    record = await _find_execution(deps, request.match_info["flow_sid"], request.match_info["sid"])
    await _end(deps, record)
    await tombstone_history(deps, await deps.history.keys_of(record.sid))
    return web.Response(status=204)


async def _settled_steps(deps: Deps, record: ExecutionRecord) -> list[StepRecord]:
    """The execution's steps, after waiting briefly for any the snapshot counts but this instance has not read.

    Steps and execution snapshots travel on different partitions, so the
    snapshot that says "5 steps" can overtake the fifth step.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _SETTLE_SECONDS
    while await deps.history.known_steps(record.sid) < record.step_count and loop.time() < deadline:
        await deps.history.changed(0.1)
    return await deps.history.steps_of(record.sid)


@routes.get("/v2/Flows/{flow_sid}/Executions/{sid}/Steps")
async def list_steps(request: web.Request) -> web.Response:
    """Newest step first (``context`` is null in the list; fetch the Step Context for it)."""
    deps = request.app[DEPS]
    record = await _find_execution(deps, request.match_info["flow_sid"], request.match_info["sid"])
    page = page_request(request, (int,))
    steps = {step.index: step for step in await _settled_steps(deps, record)}
    window = select(SortedList((-index,) for index in steps), page)
    items = [step_json(steps[-index], deps.urls, full=False) for (index,) in window.keys]
    url = f"{deps.urls.execution(record.flow_sid, record.sid)}/Steps"
    return json_response(envelope("steps", items, window, url, page))


async def _find_step(deps: Deps, request: web.Request) -> StepRecord:
    record = await _find_execution(deps, request.match_info["flow_sid"], request.match_info["sid"])
    step = await deps.history.step(record.sid, request.match_info["step_sid"])
    if step is None and await deps.history.known_steps(record.sid) < record.step_count:
        await _settled_steps(deps, record)
        step = await deps.history.step(record.sid, request.match_info["step_sid"])
    if step is None:
        raise ApiError(404, 20404, f"The requested resource /Flows/{record.flow_sid}/Executions/{record.sid}"
                                   f"/Steps/{request.match_info['step_sid']} was not found")
    return step


@routes.get("/v2/Flows/{flow_sid}/Executions/{sid}/Steps/{step_sid}")
async def fetch_step(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    return json_response(step_json(await _find_step(deps, request), deps.urls))


@routes.get("/v2/Flows/{flow_sid}/Executions/{sid}/Steps/{step_sid}/Context")
async def fetch_step_context(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    return json_response(step_context_json(await _find_step(deps, request), deps.urls))
