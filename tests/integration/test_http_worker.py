"""The http-worker over a real broker: HttpRequest commands in, HttpResult events out.

The cases are published together, so the worker runs them concurrently and the
real 10 s Studio timeout (a server sleeping 11 s) costs the module ~10 s once.
Unit tests (tests/unit/http_worker) pin every rule of perform(); these pin the
Kafka side: topics, keys, the one-result-per-request contract, shutdown.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools.cluster import Cluster
from services.http_worker.service import HttpWorker
from shared.kafka import make_producer, make_reader, read_all_partitions
from shared.messages import HttpRequest, HttpResult, decode, encode
from shared.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Server:
    base: str = ""
    seen: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # path -> requests


def _app(server: Server) -> web.Application:
    async def record(request: web.Request) -> None:
        server.seen.setdefault(request.path, []).append({
            "method": request.method, "query": dict(request.query), "body": (await request.read()).decode(),
            "idempotency_key": request.headers.get("Idempotency-Key", ""),
        })

    async def ok(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response({"message": "Hi", "person": {"name": "Bob", "age": 40}})

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    async def slow(request: web.Request) -> web.Response:
        await record(request)
        await asyncio.sleep(float(request.query.get("seconds", "11")))
        return web.json_response({"late": True})

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 65 * 1024, content_type="text/plain")

    async def hop(request: web.Request) -> web.Response:
        await record(request)
        raise web.HTTPFound(request.query["to"])

    async def echo(request: web.Request) -> web.Response:
        await record(request)
        return web.json_response(server.seen[request.path][-1])

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/fail", fail)
    app.router.add_get("/slow", slow)
    app.router.add_get("/huge", huge)
    app.router.add_get("/hop", hop)
    app.router.add_post("/echo", echo)
    app.router.add_get("/drain", slow)
    return app


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server() -> AsyncIterator[Server]:
    s = Server()
    runner = web.AppRunner(_app(s), access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    s.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield s
    await runner.cleanup()


@dataclass
class Kafka:
    settings: Settings
    producer: AIOKafkaProducer
    reader: AIOKafkaConsumer
    results: dict[str, list[tuple[bytes | None, HttpResult]]] = field(default_factory=dict)

    async def send(self, request: HttpRequest) -> None:
        await self.producer.send_and_wait(self.settings.topic("http-requests"), encode(request),
                                          key=request.execution_sid.encode())

    async def wait_for(self, request_ids: set[str], timeout: float = 40.0, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while any(len(self.results.get(rid, [])) < count for rid in request_ids):
            if time.monotonic() > deadline:
                missing = sorted(rid for rid in request_ids if len(self.results.get(rid, [])) < count)
                raise AssertionError(f"no HttpResult for {missing} within {timeout}s")
            await self.poll()

    async def poll(self) -> None:
        batches = await self.reader.getmany(timeout_ms=200)
        for records in batches.values():
            for record in records:
                message = decode(record.value or b"")
                if isinstance(message, HttpResult):
                    self.results.setdefault(message.request_id, []).append((record.key, message))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def kafka(cluster: Cluster) -> AsyncIterator[Kafka]:
    settings = Settings.from_env(cluster.env)
    producer = make_producer(settings, "it-http-worker-producer")
    reader = make_reader(settings, "it-http-worker-reader")
    await producer.start()
    await reader.start()
    tps = await read_all_partitions(reader, settings.topic("events"))
    await reader.seek_to_end(*tps)
    for tp in tps:
        await reader.position(tp)  # resolve "end" now, before anything is published
    yield Kafka(settings, producer, reader)
    await reader.stop()
    await producer.stop()


def command(url: str, **overrides: Any) -> HttpRequest:
    execution = "FN" + uuid.uuid4().hex
    base = HttpRequest(
        request_id="RQ" + uuid.uuid4().hex, execution_sid=execution, route=f"FW{uuid.uuid4().hex}:+1555{execution[-7:]}",
        token=uuid.uuid4().hex[:12], purpose="http", method="GET", url=url,
        content_type="application/x-www-form-urlencoded;charset=utf-8", body=None, form=[], query=[],
        twilio_auth=False, accept_3xx=False, created_at=time.time(),
    )
    return replace(base, **overrides)


#: name -> (path or absolute URL, HttpRequest overrides, expected HttpResult fields)
CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "a 2xx JSON response is reported ok with its body":
        ("/ok", {"query": [["who", "Ann"]]},
         {"ok": True, "status_code": 200, "outcome": "2xx", "content_type": "application/json; charset=utf-8",
          "body": '{"message": "Hi", "person": {"name": "Bob", "age": 40}}'}),
    "a 5xx response is reported failed": ("/fail", {}, {"ok": False, "status_code": 500, "outcome": "5xx", "body": "boom"}),
    "a server sleeping 11 s times out at the default 10 s": ("/slow", {}, {"ok": False, "status_code": None, "outcome": "timeout"}),
    "a 65 kB response is reported too large": ("/huge", {}, {"ok": False, "outcome": "too_large", "body": ""}),
    "a redirect is followed": ("/hop?to=/ok", {}, {"ok": True, "status_code": 200, "outcome": "2xx"}),
    "a form POST reaches the server form-encoded":
        ("/echo", {"method": "POST", "form": [["Body", "hi there"]]}, {"ok": True, "status_code": 200}),
    "the link-local metadata address is refused": ("http://169.254.169.254/latest/meta-data/", {},
                                                   {"ok": False, "status_code": None, "outcome": "refused"}),
    "a URL that is not a URL is invalid": ("not a url", {}, {"ok": False, "status_code": None, "outcome": "invalid"}),
}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def outcomes(kafka: Kafka, server: Server) -> dict[str, tuple[HttpRequest, list[tuple[bytes | None, HttpResult]]]]:
    sent: dict[str, HttpRequest] = {}
    for name, (path, overrides, _) in CASES.items():
        url = server.base + path if path.startswith("/") else path
        sent[name] = command(url, **overrides)
    await asyncio.gather(*(kafka.send(r) for r in sent.values()))
    await kafka.wait_for({r.request_id for r in sent.values()})
    for _ in range(3):  # a duplicate result would have arrived by now
        await kafka.poll()
    return {name: (req, kafka.results[req.request_id]) for name, req in sent.items()}


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES))
async def test_one_result_per_request_on_the_events_topic_keyed_by_route(name: str, outcomes: Any) -> None:
    request, results = outcomes[name]
    assert len(results) == 1
    key, result = results[0]
    assert key == request.route.encode()
    assert (result.request_id, result.execution_sid, result.route, result.token) == (
        request.request_id, request.execution_sid, request.route, request.token)
    expected = CASES[name][2]
    assert {k: getattr(result, k) for k in expected} == expected


async def test_the_default_timeout_is_10_seconds_for_all_hops_together(outcomes: Any) -> None:
    _, [(_, result)] = outcomes["a server sleeping 11 s times out at the default 10 s"]
    assert result.error == "no complete response within 10 s"
    assert 9.9 <= result.elapsed < 10.9


async def test_the_server_sees_the_request_id_as_idempotency_key_and_the_encoded_request(outcomes: Any, server: Server) -> None:
    ok_request, _ = outcomes["a 2xx JSON response is reported ok with its body"]
    post_request, _ = outcomes["a form POST reaches the server form-encoded"]
    [got] = [s for s in server.seen["/ok"] if s["idempotency_key"] == ok_request.request_id]
    assert got["query"] == {"who": "Ann"} and got["method"] == "GET"
    [posted] = [s for s in server.seen["/echo"] if s["idempotency_key"] == post_request.request_id]
    assert posted["body"] == "Body=hi+there"


async def test_a_repeated_command_is_performed_again_with_the_same_idempotency_key(kafka: Kafka, server: Server) -> None:
    request = command(server.base + "/ok")
    await kafka.send(request)
    await kafka.send(request)  # e.g. the processor re-sent it after a crash
    await kafka.wait_for({request.request_id}, count=2)
    keys = [s["idempotency_key"] for s in server.seen["/ok"]]
    assert keys.count(request.request_id) == 2
    assert all(result.ok for _, result in kafka.results[request.request_id])


async def _performing(server: Server, path: str, request: HttpRequest) -> None:
    for _ in range(200):
        if any(s["idempotency_key"] == request.request_id for s in server.seen.get(path, [])):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the worker never performed the request")


async def test_a_rebalance_lets_requests_in_flight_finish_so_the_next_owner_does_not_repeat_them(
        kafka: Kafka, server: Server) -> None:
    request = command(server.base + "/drain?seconds=3")
    await kafka.send(request)
    await _performing(server, "/drain", request)
    joiner = HttpWorker(kafka.settings)  # a second worker joins the group: every partition is revoked
    await joiner.start()
    running = asyncio.create_task(joiner.run())
    try:
        await kafka.wait_for({request.request_id}, timeout=20)
        probe = command(server.base + "/ok")
        await kafka.send(probe)  # the group works after the rebalance, whoever owns the probe's partition ...
        await kafka.wait_for({probe.request_id}, timeout=30)
        for _ in range(10):
            await kafka.poll()
        # ... and the request that was in flight during the rebalance was performed exactly once.
        assert [s["idempotency_key"] for s in server.seen["/drain"]].count(request.request_id) == 1
        assert len(kafka.results[request.request_id]) == 1
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await joiner.stop()


def _ready(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


async def test_sigterm_finishes_requests_in_flight_commits_and_exits_cleanly(
        cluster: Cluster, kafka: Kafka, server: Server) -> None:
    """Runs last: it restarts the cluster's http-worker."""
    request = command(server.base + "/drain?seconds=3")
    await kafka.send(request)
    await _performing(server, "/drain", request)
    proc = cluster.processes["http_worker"]
    os.kill(proc.pid, signal.SIGTERM)
    port = cluster.ports["http_worker"]
    statuses = set()
    while proc.poll() is None:
        statuses.add(await asyncio.to_thread(_ready, port))
        await asyncio.sleep(0.1)
    assert proc.returncode == 0
    assert 503 in statuses  # not ready while draining
    await kafka.wait_for({request.request_id}, timeout=5)
    _, result = kafka.results[request.request_id][0]
    assert result.ok  # the request in flight finished and its result was published before exit

    cluster.processes.pop("http_worker")
    cluster.start_service("http_worker")
    await asyncio.to_thread(cluster.wait_ready, "http_worker")
    probe = command(server.base + "/ok")
    await kafka.send(probe)  # the restarted worker consumes again ...
    await kafka.wait_for({probe.request_id})
    # ... and did not repeat the drained request: its offset was committed before the exit.
    assert [s["idempotency_key"] for s in server.seen["/drain"]].count(request.request_id) == 1
    assert len(kafka.results[request.request_id]) == 1
