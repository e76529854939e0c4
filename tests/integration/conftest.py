"""A real cluster for the integration tests: Kafka from Maven Central and the four services.

One cluster per test session (starting Kafka takes seconds); each test uses its
own flows and contacts so tests stay independent. Everything is stopped by PID.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from devtools.cluster import Cluster
from shared.settings import Settings
from tests.integration.messages_api import MessagesApi

FLEX_WORKSPACE = "WS" + "7" * 32  # the TaskRouter workspace Send to Flex routes interactions in


@pytest.fixture(scope="session")
def messages_api() -> Iterator[MessagesApi]:
    """Twilio's Messages REST API played locally; the cluster sends Send Message / Send & Wait here."""
    defaults = Settings()
    api = MessagesApi(defaults.account_sid, defaults.auth_token)
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="session")
def cluster(messages_api: MessagesApi) -> Iterator[Cluster]:
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-it-"))
    c = Cluster.local(workdir, SWITCHBOARD_VALIDATE_WEBHOOK_SIGNATURE="true",
                      SWITCHBOARD_TWILIO_API_BASE=messages_api.base,
                      SWITCHBOARD_FLEX_API_BASE=messages_api.base, SWITCHBOARD_FLEX_WORKSPACE_SID=FLEX_WORKSPACE,
                      SWITCHBOARD_CONVERSATIONS_API_BASE=messages_api.base,
                      SWITCHBOARD_EVENT_STREAM_SINKS=f"{messages_api.base}/event-streams",
                      SWITCHBOARD_WEBHOOK_REPLY_BUDGET_SECONDS="3")
    try:
        c.start()
        yield c
    finally:
        c.stop()
        if os.environ.get("SWITCHBOARD_KEEP_TEST_DIR") is None:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def settings(cluster: Cluster) -> Settings:
    return Settings.from_env(cluster.env)


class Api:
    """A thin REST client for tests: Twilio-style form posts with Basic auth."""

    def __init__(self, session: aiohttp.ClientSession, base: str, settings: Settings) -> None:
        self.session, self.base, self.settings = session, base, settings
        self.auth = {"Authorization": aiohttp.encode_basic_auth(settings.account_sid, settings.auth_token)}

    async def post(self, path: str, data: dict[str, str]) -> tuple[int, Any]:
        async with self.session.post(self.base + path, data=data, headers=self.auth) as r:
            return r.status, orjson.loads(await r.read())

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.base + path, headers=self.auth) as r:
            return r.status, orjson.loads(await r.read())

    async def create_flow(self, definition: dict[str, Any], name: str = "test", status: str = "published") -> str:
        code, body = await self.post("/v2/Flows", {"FriendlyName": name, "Status": status,
                                                   "Definition": orjson.dumps(definition).decode()})
        assert code == 201, body
        return str(body["sid"])

    async def start(self, flow_sid: str, to: str | None = None, params: dict[str, Any] | None = None,
                    from_: str = "+15559990000") -> dict[str, Any]:
        data = {"To": to or f"+1555{uuid.uuid4().int % 10**7:07d}", "From": from_}
        if params is not None:
            data["Parameters"] = orjson.dumps(params).decode()
        code, body = await self.post(f"/v2/Flows/{flow_sid}/Executions", data)
        assert code == 201, body
        return body  # type: ignore[no-any-return]

    async def wait_ended(self, flow_sid: str, sid: str, timeout: float = 30) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            code, body = await self.get(f"/v2/Flows/{flow_sid}/Executions/{sid}")
            if code == 200 and body["status"] == "ended":
                return body  # type: ignore[no-any-return]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"execution {sid} did not end within {timeout}s: {body}")
            await asyncio.sleep(0.1)

    async def steps(self, flow_sid: str, sid: str) -> list[dict[str, Any]]:
        code, body = await self.get(f"/v2/Flows/{flow_sid}/Executions/{sid}/Steps?PageSize=1000")
        assert code == 200, body
        return list(reversed(body["steps"]))  # oldest first


@pytest.fixture
async def api(cluster: Cluster, settings: Settings) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, cluster.ingress_url, settings)


@pytest.fixture
async def http_server() -> AsyncIterator[Callable[[web.Application], Any]]:
    """Start aiohttp apps on 127.0.0.1 free ports; returns their base URLs."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def bob_service(http_server: Callable[[web.Application], Any]) -> str:
    """A service on 127.0.0.1 whose ``GET /person`` answers Bob, 40 (what skeleton_flow.json looks up); its base URL."""
    async def person(request: web.Request) -> web.Response:
        return web.json_response({"person": {"name": "Bob", "age": 40}})

    app = web.Application()
    app.router.add_get("/person", person)
    return str(await http_server(app))
