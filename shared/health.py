"""``/metrics``, ``/livez`` and ``/readyz`` for any aiohttp application."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

__all__ = ["add_health_routes"]


def add_health_routes(app: web.Application, ready: Callable[[], bool],
                      registry: CollectorRegistry = REGISTRY) -> None:
    """Liveness only proves the loop answers; readiness asks the service (Kafka up, caught up, not stopping)."""

    async def livez(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        ok = ready()
        return web.json_response({"status": "ready" if ok else "not ready"}, status=200 if ok else 503)

    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
