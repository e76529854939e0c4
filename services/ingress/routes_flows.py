"""``/v2/Flows``: create, list, fetch, update, delete, revisions, validate."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from shared.flow import FlowDefinitionError
from shared.flow_catalog import flow_key
from shared.ids import new_sid
from shared.messages import FlowRecord, encode

from .deps import DEPS, Deps
from .errors import ApiError
from .forms import form, page_params
from .paging import paginate
from .resources import flow_json

__all__ = ["routes"]

routes = web.RouteTableDef()


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _definition(deps: Deps, text: str | None, required: bool) -> dict[str, Any] | None:
    if text is None or text == "":
        if required:
            raise ApiError(400, 20001, "Missing required parameter Definition in the post body")
        return None
    if len(text.encode()) > deps.settings.max_flow_definition_bytes:
        raise ApiError(400, 81022, "Flow definition validation failed",
                       {"errors": [{"property_path": "#", "message": "the definition is too large"}]})
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, 81022, "Flow definition validation failed",
                       {"errors": [{"property_path": "#", "message": f"not valid JSON: {exc}"}]}) from exc
    try:
        from shared.validation import validate_definition

        validate_definition(value)
    except FlowDefinitionError as exc:
        raise ApiError(400, 81022, "Flow definition validation failed",
                       {"errors": [i.as_dict() for i in exc.issues]}) from exc
    return value  # type: ignore[no-any-return]


def _status(value: str | None, required: bool) -> str | None:
    if value is None or value == "":
        if required:
            raise ApiError(400, 20001, "Missing required parameter Status in the post body")
        return None
    if value not in ("draft", "published"):
        raise ApiError(400, 20001, f"Status must be 'draft' or 'published', not {value!r}")
    return value


def _created(deps: Deps, sid: str) -> float:
    revisions = deps.catalog.revisions(sid)
    return min(r.date_created for r in revisions) if revisions else deps.clock.now()


@routes.post("/v2/Flows")
async def create_flow(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    data = await form(request, deps.settings.max_request_body_bytes)
    name = data.get("FriendlyName")
    if not name:
        raise ApiError(400, 20001, "Missing required parameter FriendlyName in the post body")
    status = _status(data.get("Status"), required=True)
    definition = _definition(deps, data.get("Definition"), required=True)
    now = deps.clock.now()
    record = FlowRecord(sid=new_sid("FW"), revision=1, friendly_name=name, status=status or "draft",
                        definition=definition, commit_message=data.get("CommitMessage", ""), valid=True,
                        errors=[], warnings=[], date_created=now, date_updated=now)
    await deps.publish("flows", flow_key(record.sid, record.revision).decode(), record)
    deps.catalog.apply(flow_key(record.sid, record.revision), encode(record))  # read-your-writes
    return _json(flow_json(record, deps.urls, now), 201)


@routes.get("/v2/Flows")
async def list_flows(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    size, page, token = page_params(request)
    flows = sorted(deps.catalog.flows(), key=lambda r: (_created(deps, r.sid), r.sid), reverse=True)
    return _json(paginate(flows, lambda r: flow_json(r, deps.urls, _created(deps, r.sid), full=False), "flows",
                          f"{deps.urls.base}/v2/Flows", size, page, token))


def _flow(deps: Deps, sid: str) -> FlowRecord:
    record = deps.catalog.latest(sid)
    if record is None:
        raise ApiError(404, 20404, f"The requested resource /Flows/{sid} was not found")
    return record


@routes.get("/v2/Flows/{sid}")
async def fetch_flow(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    record = _flow(deps, request.match_info["sid"])
    return _json(flow_json(record, deps.urls, _created(deps, record.sid)))
