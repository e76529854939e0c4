"""``python -m services.scheduler``: run one scheduler instance."""

from __future__ import annotations

import asyncio
import os

from aiohttp import web

from shared import metrics
from shared.health import add_health_routes
from shared.lag import LagMonitor
from shared.logs import configure_logging
from shared.runner import serve
from shared.settings import Settings

from .service import Scheduler


async def amain(settings: Settings) -> None:
    scheduler = Scheduler(settings)
    await scheduler.start()
    app = web.Application()
    add_health_routes(app, lambda: scheduler.ready)

    async def run() -> None:
        await asyncio.gather(scheduler.consume(), scheduler.fire_loop(), LagMonitor(settings).run())

    await serve(app, settings.ingress_host, settings.scheduler_port, run, scheduler.stop)


def main() -> None:
    settings = Settings.from_env(os.environ)
    configure_logging("scheduler", settings.log_level, settings.log_json)
    metrics.BUILD_INFO.info({"version": metrics.VERSION, "component": "scheduler"})
    asyncio.run(amain(settings))


if __name__ == "__main__":
    main()
