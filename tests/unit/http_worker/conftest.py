"""A real aiohttp server on 127.0.0.1 that plays every kind of endpoint a flow may call."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web


@dataclass
class Target:
    """The running test server: its base URL and what it saw."""

    base: str
    port: int
    seen: list[dict[str, Any]] = field(default_factory=list)
    streamed: list[int] = field(default_factory=list)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"


def _app(target: Target) -> web.Application:
    async def record(request: web.Request) -> dict[str, Any]:
        body = await request.read()
        auth = request.headers.get("Authorization", "")
        seen = {
            "method": request.method,
            "path": request.path,
            "host": request.host,
            "query": [[k, v] for k, v in request.query.items()],
            "headers": dict(request.headers),
            "body": body.decode(),
            "auth": base64.b64decode(auth[6:]).decode() if auth.startswith("Basic ") else auth,
        }
        target.seen.append(seen)
        return seen

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(await record(request))

    async def ok(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"message": "Hi", "person": {"name": "Bob", "age": 40}})

    async def array(request: web.Request) -> web.Response:
        return web.json_response([{"a": 1}, {"b": 2}])

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="plain words", content_type="text/plain")

    async def no_content(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(status=204)

    async def status(request: web.Request) -> web.Response:
        return web.Response(status=int(request.match_info["code"]), text="status body")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("seconds", "11")))
        return web.json_response({"late": True})

    async def sized(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * int(request.match_info["n"]), content_type="text/plain")

    async def endless(request: web.Request) -> web.StreamResponse:
        """Chunked, no Content-Length, never ends on its own: only a client that stops reading gets an answer."""
        response = web.StreamResponse()
        response.content_type = "text/plain"
        await response.prepare(request)
        sent = 0
        try:
            while sent < 512 * 1024 * 1024:
                await response.write(b"y" * 4096)
                sent += 4096
        except (ConnectionError, RuntimeError):
            pass
        finally:
            target.streamed.append(sent)
        return response

    async def redirect(request: web.Request) -> web.Response:
        await record(request)
        code = int(request.query.get("status", "302"))
        return web.Response(status=code, headers={"Location": request.query["to"]})

    async def loop(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return web.Response(status=302, headers={"Location": f"/loop/{n + 1}"})

    async def latin(request: web.Request) -> web.Response:
        return web.Response(body="café".encode("latin-1"), headers={"Content-Type": "text/plain; charset=latin-1"})

    async def bogus_charset(request: web.Request) -> web.Response:
        return web.Response(body=b"ok", headers={"Content-Type": "text/plain; charset=no-such-charset"})

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/ok", ok)
    app.router.add_get("/array", array)
    app.router.add_get("/text", text)
    app.router.add_get("/no-content", no_content)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/bytes/{n}", sized)
    app.router.add_get("/endless", endless)
    app.router.add_route("*", "/redirect", redirect)
    app.router.add_get("/loop/{n}", loop)
    app.router.add_get("/latin", latin)
    app.router.add_get("/bogus-charset", bogus_charset)
    return app


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    t = Target("", 0)
    runner = web.AppRunner(_app(t), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    t.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    t.base = f"http://127.0.0.1:{t.port}"
    yield t
    await runner.cleanup()


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
