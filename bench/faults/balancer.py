"""The public URL in front of the ingress replicas: a loopback load balancer, as an operator would run one.

Requests go round-robin to the replicas; a replica that refuses the connection (killed, restarting) is
skipped and the request goes to the next one — nothing was sent, so that retry is always safe. A request
that fails after it was sent (its replica died mid-request) is *not* retried, as a load balancer must not
repeat a POST that may have taken effect: the client gets 502 and the failure is recorded.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

__all__ = ["Balancer", "Failure"]

_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass(frozen=True)
class Failure:
    at: float  # seconds since the balancer started
    upstream: str
    path: str
    error: str


@dataclass
class Balancer:
    upstreams: list[str]
    failures: list[Failure] = field(default_factory=list)
    refused: int = 0  # connections refused and moved to another replica
    _next: int = 0
    _started: float = field(default_factory=time.monotonic)
    _session: aiohttp.ClientSession | None = None
    _runner: web.AppRunner | None = None

    async def start(self, port: int) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                              connector=aiohttp.TCPConnector(limit=0, force_close=True))
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        deadline = time.monotonic() + 60  # every replica down at once (should not happen): give up after this
        while True:
            upstream = self.upstreams[self._next % len(self.upstreams)]
            self._next += 1
            try:
                async with self._session.request(request.method, upstream + request.path_qs, data=body,
                                                 headers=headers, allow_redirects=False) as response:
                    payload = await response.read()
                    out = {k: v for k, v in response.headers.items() if k.lower() not in _HOP}
                    return web.Response(status=response.status, body=payload, headers=out)
            except aiohttp.ClientConnectorError:
                self.refused += 1  # nothing was sent: try the next replica
                if time.monotonic() > deadline:
                    return web.Response(status=503, text="no ingress replica accepts connections")
                await asyncio.sleep(0.05)
            except (TimeoutError, aiohttp.ClientError) as exc:
                self.failures.append(Failure(round(time.monotonic() - self._started, 3), upstream, request.path,
                                             type(exc).__name__))
                return web.Response(status=502, text=f"upstream failed mid-request: {type(exc).__name__}")
