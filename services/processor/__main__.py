"""``python -m services.processor``: run one processor worker (``SWITCHBOARD_PROCESSOR_LOOP`` picks which loop)."""

from __future__ import annotations

import asyncio
import os
import sys

from aiohttp import web

from shared import metrics
from shared.health import add_health_routes
from shared.logs import configure_logging
from shared.runner import serve
from shared.settings import Settings


async def run_batched(settings: Settings, worker_id: str) -> None:
    from .loop import BatchedProcessor

    processor = BatchedProcessor(settings, worker_id=worker_id)
    await processor.start()
    app = web.Application()
    add_health_routes(app, lambda: processor.ready)
    await serve(app, settings.ingress_host, settings.processor_port, processor.run, processor.stop)


def run_faust(settings: Settings, worker_id: str) -> None:
    from .app import create_app

    app = create_app(settings, worker_id=worker_id)
    # faust's own CLI spells levels its way ("warn", "crit").
    level = {"warning": "warn", "critical": "crit"}.get(settings.log_level.lower(), settings.log_level.lower())
    # --quiet: no banner on stdout, so the log stream is JSON lines only.
    sys.argv = [sys.argv[0], "--quiet", "worker", "--loglevel", level]
    app.main()


def main() -> None:
    settings = Settings.from_env(os.environ)
    configure_logging("processor", settings.log_level, settings.log_json)
    metrics.BUILD_INFO.info({"version": metrics.VERSION, "component": "processor"})
    worker_id = os.environ.get("SWITCHBOARD_WORKER_ID", str(os.getpid()))
    if settings.processor_loop == "faust":
        run_faust(settings, worker_id)
    else:
        asyncio.run(run_batched(settings, worker_id))


if __name__ == "__main__":
    main()
