"""The ingress's composition root: ``create_app(settings, deps)`` and the Kafka plumbing it needs."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from aiokafka import TopicPartition

from shared import metrics
from shared.clock import Clock, SystemClock
from shared.flow_catalog import FlowCatalog, follow_flows
from shared.health import add_health_routes
from shared.kafka import make_producer, make_reader, read_all_partitions
from shared.lag import LagMonitor
from shared.settings import Settings

from . import routes_executions, routes_flows, routes_revisions, webhook
from .auth import authorized
from .console import PUBLIC_PREFIX, add_console_routes
from .deps import DEPS, Deps
from .errors import ApiError, error_response
from .history import follow, open_store, run_janitor
from .replies import ReplyChannel
from .resources import Urls

__all__ = ["create_app"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OPEN = ("/metrics", "/livez", "/readyz", PUBLIC_PREFIX)


@web.middleware
async def _errors_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    info = request.match_info.route.resource
    route = info.canonical if info is not None else "unmatched"
    status = 500
    try:
        deps = request.app[DEPS]
        if not request.path.startswith(_OPEN) and not request.path.startswith("/v1/Accounts/"):
            if not authorized(request.headers.get("Authorization"), deps.settings):
                raise ApiError(401, 20003, "Authentication Error - invalid username")
        response = await handler(request)
        status = response.status
        return response
    except ApiError as exc:
        status = exc.status
        return error_response(exc)
    except web.HTTPException as exc:
        status = exc.status
        if exc.status == 413:
            return error_response(ApiError(413, 20413, "Request body too large"))
        if exc.status in (404, 405):
            return error_response(ApiError(exc.status, 20404, f"The requested resource {request.path} was not found"))
        raise
    except Exception:
        status = 500
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(ApiError(500, 20500, "Internal Server Error"))
    finally:
        if route not in _OPEN:
            metrics.INGRESS_REQUESTS.labels(route, request.method, str(status)).inc()
            metrics.INGRESS_DURATION.labels(route, f"{status // 100}xx").observe(time.perf_counter() - started)


def create_app(settings: Settings, clock: Clock | None = None) -> web.Application:
    app = web.Application(middlewares=[_errors_and_metrics], client_max_size=settings.max_request_body_bytes)
    app.router.add_routes(routes_flows.routes)
    app.router.add_routes(routes_revisions.routes)
    app.router.add_routes(routes_executions.routes)
    app.router.add_routes(webhook.routes)
    add_console_routes(app, settings)
    state: dict[str, Deps] = {}
    add_health_routes(app, lambda: "deps" in state and _ready(state["deps"]))

    async def kafka(app: web.Application) -> AsyncIterator[None]:
        producer = make_producer(settings, "ingress")
        readers = [make_reader(settings, f"ingress-{n}", bulk=n != "replies") for n in ("replies", "flows", "history")]
        await producer.start()
        for reader in readers:
            await reader.start()
        replies = ReplyChannel(readers[0], settings.topic("replies"), settings.ingress_instance)
        await replies.start()
        catalog = FlowCatalog()
        history = open_store(settings, clock or SystemClock())
        stored_offsets = await history.open()  # before any handler can read it
        await read_all_partitions(readers[1], settings.topic("flows"))
        history_topic = settings.topic("history")

        async def history_ends() -> dict[int, int]:
            tps = [TopicPartition(history_topic, p) for p in sorted(await producer.partitions_for(history_topic))]
            return {tp.partition: int(offset) for tp, offset in (await readers[2].end_offsets(tps)).items()}

        deps = Deps(settings, producer, replies, catalog, history, clock or SystemClock(),
                    Urls(settings.public_base_url, settings.account_sid), history_ends=history_ends)
        app[DEPS] = deps
        state["deps"] = deps
        tasks = [asyncio.create_task(replies.run()), asyncio.create_task(follow_flows(readers[1], catalog)),
                 asyncio.create_task(follow(settings, history, readers[2], stored_offsets)),
                 asyncio.create_task(run_janitor(history, lambda key: deps.publish("history", key, None),
                                                 settings.ingress_instance)),
                 asyncio.create_task(LagMonitor(settings).run())]
        for task in tasks[:3]:  # the read models: without them this replica must not linger half alive
            task.add_done_callback(_exit_if_failed)
        try:
            await asyncio.wait_for(asyncio.gather(catalog.ready.wait(), history.ready.wait()), 60)
        except TimeoutError:
            pass
        yield
        deps.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for reader in readers:
            await reader.stop()
        await producer.stop()
        await history.close()

    app.cleanup_ctx.append(kafka)
    return app


def _exit_if_failed(task: asyncio.Task[None]) -> None:
    """A reader that stopped on an error leaves the replica serving stale data and never ready: exit, to be
    restarted (the stores resume from their offsets)."""
    if not task.cancelled() and task.exception() is not None:
        log.critical("a read model stopped; exiting", exc_info=task.exception())
        logging.shutdown()
        os._exit(1)


def _ready(deps: Deps) -> bool:
    return (not deps.stopping and deps.replies.ready.is_set() and deps.catalog.ready.is_set()
            and deps.history.ready.is_set())
