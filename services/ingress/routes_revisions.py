"""``/v2/Flows/{Sid}/Revisions`` (list, fetch) and ``/v2/Flows/{Sid}/TestUsers`` (fetch, update)."""

from __future__ import annotations

import dataclasses

from aiohttp import web
from sortedcontainers import SortedList

from shared.messages import FlowRecord

from .deps import DEPS, Deps
from .errors import ApiError
from .forms import form_values, page_request
from .paging import envelope, select
from .resources import revision_json, test_users_json
from .routes_flows import find_flow, json_response, write_flow

__all__ = ["resolve_revision", "routes"]

routes = web.RouteTableDef()


@routes.get("/v2/Flows/{sid}/Revisions")
async def list_revisions(request: web.Request) -> web.Response:
    """Newest revision first; ``definition``/``valid``/``errors`` are null in the list (fetch one for them)."""
    deps = request.app[DEPS]
    sid = request.match_info["sid"]
    await find_flow(deps, sid)
    page = page_request(request, (int,))
    revisions = {r.revision: r for r in deps.catalog.revisions(sid)}
    window = select(SortedList((-n,) for n in revisions), page)
    items = [revision_json(revisions[-n], deps.urls, full=False) for (n,) in window.keys]
    return json_response(envelope("revisions", items, window, f"{deps.urls.flow(sid)}/Revisions", page))


def resolve_revision(deps: Deps, sid: str, name: str) -> FlowRecord:
    """A revision number, ``LatestPublished`` or ``LatestRevision``; anything else is error 81021."""
    record: FlowRecord | None
    if name == "LatestRevision":
        record = deps.catalog.latest(sid)
    elif name == "LatestPublished":
        record = deps.catalog.latest_published(sid)
    elif name.isdigit():
        record = next((r for r in deps.catalog.revisions(sid) if r.revision == int(name)), None)
    else:
        raise ApiError(400, 81021, "Flow revision must be an integer or enum(LatestPublished, LatestRevision)")
    if record is None:
        raise ApiError(404, 20404, f"The requested resource /Flows/{sid}/Revisions/{name} was not found")
    return record


@routes.get("/v2/Flows/{sid}/Revisions/{revision}")
async def fetch_revision(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    sid = request.match_info["sid"]
    await find_flow(deps, sid)
    return json_response(revision_json(resolve_revision(deps, sid, request.match_info["revision"]), deps.urls))


@routes.get("/v2/Flows/{sid}/TestUsers")
async def fetch_test_users(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    sid = (await find_flow(deps, request.match_info["sid"])).sid
    return json_response(test_users_json(sid, deps.catalog.test_users(sid), deps.urls))


@routes.post("/v2/Flows/{sid}/TestUsers")
async def update_test_users(request: web.Request) -> web.Response:
    """Replace the list. ``TestUsers`` is required (repeat it per user); a single empty value clears the list.

    The list is kept on the flow's latest revision record (rewritten in place;
    every new revision carries it on), so the processor's and every ingress's
    catalog see it with no extra topic or key.
    """
    deps = request.app[DEPS]
    latest = await find_flow(deps, request.match_info["sid"])
    values = await form_values(request, deps.settings.max_request_body_bytes, "TestUsers")
    if not values:
        raise ApiError(400, 20001, "Missing required parameter TestUsers in the post body")
    users = list(dict.fromkeys(v.strip() for v in values if v.strip()))  # keep order, drop duplicates
    await write_flow(deps, dataclasses.replace(latest, test_users=users))
    return json_response(test_users_json(latest.sid, users, deps.urls))
