"""Webhook sinks: batches of events POSTed as JSON, signed like Twilio's JSON webhooks, retried, then given up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from twilio.request_validator import RequestValidator

from services.event_streams.sinks import MAX_EVENTS_PER_POST, WebhookSinks

TOKEN = "sink-token"


class Sink:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.seen: list[tuple[str, bytes, str]] = []
        self.base = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append((f"{self.base}{request.raw_path}", body, request.headers.get("X-Twilio-Signature", "")))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


@pytest.fixture
async def served() -> AsyncIterator[Any]:
    runners: list[web.AppRunner] = []

    async def serve(sink: Sink) -> str:
        app = web.Application()
        app.router.add_post("/events", sink.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        sink.base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        return f"{sink.base}/events?team=a"

    yield serve
    for runner in runners:
        await runner.cleanup()


EVENTS = [{"id": f"EV{i}", "type": "com.twilio.studio.flow.step.ended", "data": {"n": i}} for i in range(3)]


async def test_a_batch_is_posted_as_a_json_array_that_twilios_validator_accepts(served: Any) -> None:
    sink = Sink([])
    url = await served(sink)
    async with aiohttp.ClientSession() as session:
        await WebhookSinks([url], TOKEN, session).deliver(EVENTS)
    ((signed, body, signature),) = sink.seen
    assert orjson.loads(body) == EVENTS
    assert "bodySHA256=" in signed and signed.startswith(url)
    assert RequestValidator(TOKEN).validate(signed, body.decode(), signature)
    assert not RequestValidator("other").validate(signed, body.decode(), signature)


async def test_a_failing_sink_is_retried_with_backoff_then_given_up(served: Any) -> None:
    sink = Sink([500, 503, 200])
    url = await served(sink)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with aiohttp.ClientSession() as session:
        sinks = WebhookSinks([url], TOKEN, session, attempts=3, sleep=sleep)
        await sinks.deliver(EVENTS)
        assert len(sink.seen) == 3 and slept == [0.5, 1.0]
        sink.statuses = [500] * 3
        await sinks.deliver(EVENTS)
    assert len(sink.seen) == 6 and slept == [0.5, 1.0, 0.5, 1.0]  # given up after the third try


async def test_large_batches_are_split(served: Any) -> None:
    sink = Sink([])
    url = await served(sink)
    many = [{"id": f"EV{i}"} for i in range(MAX_EVENTS_PER_POST + 1)]
    async with aiohttp.ClientSession() as session:
        await WebhookSinks([url], TOKEN, session).deliver(many)
    assert [len(orjson.loads(body)) for _, body, _ in sink.seen] == [MAX_EVENTS_PER_POST, 1]


async def test_an_unreachable_sink_does_not_raise() -> None:
    async with aiohttp.ClientSession() as session:
        sinks = WebhookSinks(["http://127.0.0.1:9/events"], TOKEN, session, attempts=2, sleep=_no_sleep)
        await sinks.deliver(EVENTS)


async def _no_sleep(seconds: float) -> None:
    return None
