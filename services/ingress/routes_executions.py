"""``/v2/Flows/{FlowSid}/Executions``: create, list, fetch, end, delete; contexts; steps."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from shared.ids import new_sid
from shared.messages import EndRequested, ExecutionRecord, Reply, StartExecution, StepRecord, encode
from shared.timefmt import parse_iso8601

from .deps import DEPS, Deps
from .errors import ApiError
from .forms import form, page_params
from .paging import paginate
from .resources import execution_context_json, execution_json, step_context_json, step_json

__all__ = ["route_key", "routes"]

routes = web.RouteTableDef()


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


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


@routes.post("/v2/Flows/{flow_sid}/Executions")
async def create_execution(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    flow_sid = request.match_info["flow_sid"]
    data = await form(request, deps.settings.max_request_body_bytes)
    to, from_ = data.get("To", ""), data.get("From", "")
    if not to:
        raise ApiError(400, 20001, "Missing required parameter To in the post body")
    if not from_:
        raise ApiError(400, 20001, "Missing required parameter From in the post body")
    flow = deps.catalog.latest(flow_sid)
    if flow is None:
        raise ApiError(404, 20404, f"The requested resource /Flows/{flow_sid} was not found")
    revision = deps.catalog.latest_published(flow_sid)
    if revision is None:
        if to not in (flow.test_users or []):
            raise ApiError(400, 81020, "The flow has no published revision; publish it or add the contact as a test user")
        revision = flow
    parameters: Any = {}
    if data.get("Parameters"):
        try:
            parameters = orjson.loads(data["Parameters"])
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, 20001, f"Parameters must be a JSON object string: {exc}") from exc
        if not isinstance(parameters, dict):
            raise ApiError(400, 20001, "Parameters must be a JSON object")
    sid = new_sid("FN")
    reply_id, future = deps.replies.expect()
    event = StartExecution(execution_sid=sid, flow_sid=flow_sid, revision=revision.revision,
                           route=route_key(flow_sid, to), contact_address=to, channel_address=from_,
                           flow_data=parameters, created_at=deps.clock.now(), initiated_by=new_sid("RQ"),
                           reply_id=reply_id, reply_partition=deps.replies.partition)
    await deps.publish("events", event.route, event)
    reply = await _await_reply(deps, reply_id, future)
    if reply.status == "conflict":
        raise ApiError(409, reply.error_code or 20409, reply.error_message)
    if reply.status != "ok" or not isinstance(reply.execution, dict):
        raise ApiError(404 if reply.status == "not_found" else 500, reply.error_code or 20500,
                       reply.error_message or "the execution could not be created")
    record = ExecutionRecord(**reply.execution)
    deps.history.apply(record.sid.encode(), encode(record))  # read-your-writes
    return _json(execution_json(record, deps.urls), 201)


def _execution(deps: Deps, flow_sid: str, sid: str) -> ExecutionRecord:
    record = deps.history.execution(sid)
    if record is None or record.flow_sid != flow_sid:
        raise ApiError(404, 20404, f"The requested resource /Flows/{flow_sid}/Executions/{sid} was not found")
    return record


@routes.get("/v2/Flows/{flow_sid}/Executions")
async def list_executions(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    flow_sid = request.match_info["flow_sid"]
    size, page, token = page_params(request)
    status = request.query.get("Status") or request.query.get("status")
    filters: dict[str, str] = {}
    items = list(deps.history.executions_of(flow_sid))
    if status:
        items = [r for r in items if r.status == status]
        filters["Status"] = status
    for name, keep in (("DateCreatedFrom", lambda r, t: r.date_created >= t),
                       ("DateCreatedTo", lambda r, t: r.date_created <= t)):
        if request.query.get(name):
            try:
                bound = parse_iso8601(request.query[name])
            except ValueError as exc:
                raise ApiError(400, 20001, f"{name} must be an ISO 8601 date") from exc
            items = [r for r in items if keep(r, bound)]
            filters[name] = request.query[name]
    items.sort(key=lambda r: (r.date_created, r.sid), reverse=True)
    return _json(paginate(items, lambda r: _without_context(execution_json(r, deps.urls)), "executions",
                          f"{deps.urls.flow(flow_sid)}/Executions", size, page, token, filters))


def _without_context(body: dict[str, Any]) -> dict[str, Any]:
    body["context"] = None  # as in Studio's list responses; fetch the Context resource for it
    return body


@routes.get("/v2/Flows/{flow_sid}/Executions/{sid}")
async def fetch_execution(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    record = _execution(deps, request.match_info["flow_sid"], request.match_info["sid"])
    return _json(execution_json(record, deps.urls))


@routes.get("/v2/Flows/{flow_sid}/Executions/{sid}/Context")
async def fetch_execution_context(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    record = _execution(deps, request.match_info["flow_sid"], request.match_info["sid"])
    return _json(execution_context_json(record, deps.urls))


@routes.post("/v2/Flows/{flow_sid}/Executions/{sid}")
async def update_execution(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    record = _execution(deps, request.match_info["flow_sid"], request.match_info["sid"])
    data = await form(request, deps.settings.max_request_body_bytes)
    if data.get("Status") != "ended":
        raise ApiError(400, 20001, "Status must be 'ended'")
    if record.status == "active":
        reply_id, future = deps.replies.expect()
        await deps.publish("events", record.route, EndRequested(record.sid, record.route, deps.clock.now(),
                                                                reply_id=reply_id,
                                                                reply_partition=deps.replies.partition))
        await _await_reply(deps, reply_id, future)
        for _ in range(50):  # the ended snapshot follows the reply on the history topic
            current = deps.history.execution(record.sid)
            if current is not None and current.status == "ended":
                record = current
                break
            await deps.history.changed(0.1)
    return _json(execution_json(record, deps.urls))


def _step(deps: Deps, request: web.Request) -> StepRecord:
    record = _execution(deps, request.match_info["flow_sid"], request.match_info["sid"])
    for step in deps.history.steps_of(record.sid):
        if step.sid == request.match_info["step_sid"]:
            return step
    raise ApiError(404, 20404, f"The requested resource Steps/{request.match_info['step_sid']} was not found")


@routes.get("/v2/Flows/{flow_sid}/Executions/{sid}/Steps")
async def list_steps(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    record = _execution(deps, request.match_info["flow_sid"], request.match_info["sid"])
    size, page, token = page_params(request)
    steps = list(reversed(deps.history.steps_of(record.sid)))  # newest first, like Studio
    url = f"{deps.urls.execution(record.flow_sid, record.sid)}/Steps"
    return _json(paginate(steps, lambda s: _without_context(step_json(s, deps.urls)), "steps", url, size, page, token))


@routes.get("/v2/Flows/{flow_sid}/Executions/{sid}/Steps/{step_sid}")
async def fetch_step(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    return _json(step_json(_step(deps, request), deps.urls))


@routes.get("/v2/Flows/{flow_sid}/Executions/{sid}/Steps/{step_sid}/Context")
async def fetch_step_context(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    return _json(step_context_json(_step(deps, request), deps.urls))
