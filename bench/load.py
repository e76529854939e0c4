"""Open-loop load: requests leave on a fixed schedule whatever the answers, so queueing shows as latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["LoadResult", "open_loop"]


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    behind: int = 0  # sends that left more than 50 ms late (the generator could not keep the rate)


async def open_loop(rate: float, duration: float, call: Callable[[int], Awaitable[str | None]],
                    max_in_flight: int = 4000) -> LoadResult:
    """Call ``call(i)`` ``rate`` times per second for ``duration`` s; it returns None on success or an error label."""
    result = LoadResult()
    in_flight: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    total = int(rate * duration)

    async def one(i: int) -> None:
        sent = time.perf_counter()
        try:
            error = await call(i)
        except Exception as exc:  # noqa: BLE001 - every failure is counted, by type
            error = type(exc).__name__
        if error is None:
            result.ok += 1
            result.latencies.append(time.perf_counter() - sent)
        else:
            result.errors[error] = result.errors.get(error, 0) + 1

    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.05:
            result.behind += 1
        if len(in_flight) >= max_in_flight:
            result.errors["generator_saturated"] = result.errors.get("generator_saturated", 0) + 1
            continue
        task = asyncio.create_task(one(i))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        result.sent += 1
    if in_flight:
        await asyncio.wait(in_flight, timeout=60)
    return result
