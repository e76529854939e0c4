"""Run a service with an HTTP endpoint for health and metrics until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from aiohttp import web

__all__ = ["serve"]

log = logging.getLogger(__name__)


async def serve(app: web.Application, host: str, port: int, main: Callable[[], Coroutine[Any, Any, None]],
                on_stop: Callable[[], Awaitable[None]]) -> None:
    """Start ``app`` on host:port, run ``main`` until a signal, then ``on_stop`` and clean up."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(main())
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    if task in done and task.exception():
        log.error("service main loop failed", exc_info=task.exception())
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - already logged
        pass
    await on_stop()
    await runner.cleanup()
