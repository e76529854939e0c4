"""``python -m services.http_worker``: run one http-worker process."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from services.event_streams.relay import EventStreamRelay
from shared import metrics
from shared.health import add_health_routes
from shared.lag import LagMonitor
from shared.logs import configure_logging
from shared.runner import serve
from shared.settings import Settings

from .service import HttpWorker


async def amain(settings: Settings) -> None:
    worker = HttpWorker(settings)
    await worker.start()
    relay = EventStreamRelay(settings) if settings.streams_events else None  # Event Streams ride along
    if relay is not None:
        await relay.start()
    app = web.Application()
    add_health_routes(app, lambda: worker.ready)
    lag = LagMonitor(settings)

    async def run() -> None:
        await asyncio.gather(worker.run(), lag.run(), *([relay.run()] if relay is not None else []))

    async def stop() -> None:
        await worker.stop()
        if relay is not None:
            await relay.stop()

    await serve(app, settings.ingress_host, settings.http_worker_port, run, stop)


def main() -> None:
    settings = Settings.from_env(os.environ)
    configure_logging("http-worker", settings.log_level, settings.log_json)
    metrics.BUILD_INFO.info({"version": metrics.VERSION, "component": "http-worker"})
    asyncio.run(amain(settings))


if __name__ == "__main__":
    main()
