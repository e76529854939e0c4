"""REST creates while the processor cannot answer: the client is told the truth and a retry never runs twice.

The session cluster's only processor is SIGSTOPped (a stalled or partitioned replica) for a few seconds —
less than its session timeout, so no rebalance — while creates come in:
- through the cluster's ingress (reply budget 30 s, longer than a failover) the create simply waits and is
  answered 201 once the processor resumes;
- through a second ingress with a 1.5 s budget the create is answered 503 naming the execution it may still
  start; the client retries with the same ``I-Twilio-Idempotency-Token`` and gets that execution, which ran once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from devtools.cluster import Cluster
from devtools.kafka_broker import free_port
from services.ingress.idempotency import execution_sid_for
from shared.settings import Settings
from tests.conftest import load_fixture

EXPECTED = [("incomingRequest", "Trigger", "set_greeting"), ("next", "set_greeting", "lookup"),
            ("success", "lookup", "check"), ("match", "check", "mark_bob"), ("next", "mark_bob", "Ended")]


@pytest.fixture(scope="module")
def impatient_ingress(cluster: Cluster) -> Iterator[str]:
    """A second ingress (reply partition 2) that waits only 1.5 s for the processor's answer to a create."""
    port = free_port()
    cluster.ports["ingress-2"] = port
    cluster.start_service("ingress", label="ingress-2", extra_env={
        "SWITCHBOARD_INGRESS_PORT": str(port), "SWITCHBOARD_INGRESS_INSTANCE": "2",
        "SWITCHBOARD_REST_REPLY_BUDGET_SECONDS": "1.5"})
    try:
        cluster.wait_ready("ingress-2")
        yield f"http://127.0.0.1:{port}"
    finally:
        cluster.stop_service("ingress-2")
        cluster.ports.pop("ingress-2", None)


@pytest.fixture
async def counted_bob(http_server: Callable[[web.Application], Any]) -> tuple[str, list[str]]:
    """``GET /person`` answering Bob (what skeleton_flow.json looks up); every request's Idempotency-Key."""
    keys: list[str] = []

    async def person(request: web.Request) -> web.Response:
        keys.append(request.headers.get("Idempotency-Key", ""))
        return web.json_response({"person": {"name": "Bob", "age": 40}})

    app = web.Application()
    app.router.add_get("/person", person)
    return str(await http_server(app)), keys


class _Stopped:
    """The processor SIGSTOPped for the ``with`` block (SIGCONT however the block ends)."""

    def __init__(self, cluster: Cluster) -> None:
        self.pid = cluster.processes["processor"].pid

    def __enter__(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def __exit__(self, *_: object) -> None:
        os.kill(self.pid, signal.SIGCONT)


async def _create(session: aiohttp.ClientSession, base: str, settings: Settings, flow_sid: str, contact: str,
                  token: str, bob: str) -> tuple[int, Any]:
    auth = aiohttp.encode_basic_auth(settings.account_sid, settings.auth_token)
    data = {"To": contact, "From": "+15559990000", "Parameters": orjson.dumps({"name": "Ann", "base_url": bob}).decode()}
    async with session.post(f"{base}/v2/Flows/{flow_sid}/Executions", data=data,
                            headers={"Authorization": auth, "I-Twilio-Idempotency-Token": token}) as r:
        return r.status, orjson.loads(await r.read())


async def _executions_of(api: Any, flow_sid: str, contact: str) -> list[str]:
    code, body = await api.get(f"/v2/Flows/{flow_sid}/Executions?PageSize=1000")
    assert code == 200, body
    return [e["sid"] for e in body["executions"] if e["contact_channel_address"] == contact]


async def _ran_once(api: Any, flow_sid: str, sid: str, contact: str, keys: list[str]) -> None:
    await api.wait_ended(flow_sid, sid, timeout=60)
    steps = await api.steps(flow_sid, sid)
    assert [(s["name"], s["transitioned_from"], s["transitioned_to"]) for s in steps] == EXPECTED
    assert await _executions_of(api, flow_sid, contact) == [sid]
    assert keys and len(set(keys)) == 1  # one HTTP request (repeats, if any, with the one Idempotency-Key)


async def test_a_create_while_the_processor_is_stopped_waits_and_is_answered_201_once_it_resumes(
        api: Any, cluster: Cluster, settings: Settings, counted_bob: tuple[str, list[str]]) -> None:
    bob, keys = counted_bob
    flow_sid = await api.create_flow(load_fixture("skeleton_flow.json"), name="create while stopped")
    contact, token = f"+1555{uuid.uuid4().int % 10**7:07d}", uuid.uuid4().hex
    async with aiohttp.ClientSession() as session:
        with _Stopped(cluster):
            create = asyncio.create_task(_create(session, cluster.ingress_url, settings, flow_sid, contact, token, bob))
            await asyncio.sleep(3)
            assert not create.done()  # the processor cannot have answered: the create is still waiting
        code, body = await create
    assert code == 201, body
    assert body["sid"] == execution_sid_for(settings.account_sid, flow_sid, contact, token)
    await _ran_once(api, flow_sid, body["sid"], contact, keys)


async def test_a_create_answered_503_names_its_execution_and_a_retry_with_the_token_answers_it_run_once(
        api: Any, cluster: Cluster, settings: Settings, impatient_ingress: str,
        counted_bob: tuple[str, list[str]]) -> None:
    bob, keys = counted_bob
    flow_sid = await api.create_flow(load_fixture("skeleton_flow.json"), name="create retried")
    contact, token = f"+1555{uuid.uuid4().int % 10**7:07d}", uuid.uuid4().hex
    sid = execution_sid_for(settings.account_sid, flow_sid, contact, token)
    async with aiohttp.ClientSession() as session:
        with _Stopped(cluster):
            code, body = await _create(session, impatient_ingress, settings, flow_sid, contact, token, bob)
            assert (code, body["code"]) == (503, 20503), body
            assert sid in body["message"] and "same idempotency token" in body["message"]
            # The retry comes while the first start still waits in Kafka: the processor applies both in turn.
            retry = asyncio.create_task(_create(session, cluster.ingress_url, settings, flow_sid, contact, token, bob))
            await asyncio.sleep(0.5)
        code, body = await retry
        assert (code, body["sid"]) == (201, sid), body
        await _ran_once(api, flow_sid, sid, contact, keys)
        # Long after, through either replica: answered from the history, the ended execution, still once.
        for base in (impatient_ingress, cluster.ingress_url):
            code, body = await _create(session, base, settings, flow_sid, contact, token, bob)
            assert (code, body["sid"], body["status"]) == (201, sid, "ended"), body
    await _ran_once(api, flow_sid, sid, contact, keys)


async def test_a_create_with_a_token_used_for_another_contact_starts_its_own_execution(
        api: Any, cluster: Cluster, settings: Settings, counted_bob: tuple[str, list[str]]) -> None:
    bob, _ = counted_bob
    flow_sid = await api.create_flow(load_fixture("skeleton_flow.json"), name="token per contact")
    token = uuid.uuid4().hex
    contacts = [f"+1555{uuid.uuid4().int % 10**7:07d}" for _ in range(2)]
    async with aiohttp.ClientSession() as session:
        answers = [await _create(session, cluster.ingress_url, settings, flow_sid, c, token, bob) for c in contacts]
    assert [code for code, _ in answers] == [201, 201]
    assert [body["sid"] for _, body in answers] == [execution_sid_for(settings.account_sid, flow_sid, c, token)
                                                    for c in contacts]
