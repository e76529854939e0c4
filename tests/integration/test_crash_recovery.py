"""Crash recovery: the processor and the http-worker are killed (SIGKILL, by PID) while executions are in flight.

After both restart, every execution ends exactly as it would have without the crash: the same steps in the
same order, each step once, the same variables, one text message per contact. Outbound requests may be
repeated after a crash, but always with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

from aiohttp import web

from devtools.cluster import Cluster
from tests.integration.messages_api import MessagesApi
from tests.integration.widget_flows import context, definition, path, phone, split, w

ROUNDS = 4
EXECUTIONS = 24
COUNTER = "{% if flow.variables.count %}{{flow.variables.count | plus: 1}}{% else %}1{% endif %}"
CHANNEL = "+15559990000"

FLOW = definition(
    "count",
    w("count", "set-variables", {"next": "call"}, variables=[{"key": "count", "value": COUNTER}]),
    w("call", "make-http-request", {"success": "check", "failed": "check"},
      url="{{flow.data.base}}/work?n={{flow.variables.count}}&e={{flow.sid}}"),
    split("check", "{{flow.variables.count}}", [("equal_to", str(ROUNDS), "done")], "count"),
    w("done", "send-message", {"sent": None, "failed": None},
      body="done {{flow.variables.count}} {{widgets.call.parsed.n}}"),
)
EXPECTED = [
    ("incomingRequest", "Trigger", "count"),
    *[step for _ in range(ROUNDS - 1) for step in (("next", "count", "call"), ("success", "call", "check"),
                                                  ("noMatch", "check", "count"))],
    ("next", "count", "call"), ("success", "call", "check"), ("match", "check", "done"),
    ("sent", "done", "Ended"),
]


class Work:
    """A service that answers after a short random delay and records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []  # (execution, n, idempotency key)
        self.app = web.Application()
        self.app.router.add_get("/work", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.query["e"], request.query["n"], request.headers.get("Idempotency-Key", "")))
        await asyncio.sleep(random.uniform(0.05, 0.4))
        return web.json_response({"n": int(request.query["n"])})


async def _restart(cluster: Cluster, *names: str) -> None:
    for name in names:
        cluster.kill(name)
    for name in names:
        cluster.start_service(name)
    for name in names:
        await asyncio.to_thread(cluster.wait_ready, name, 120.0)


async def test_killing_the_processor_and_the_http_worker_mid_run_changes_no_execution(
        api: Any, cluster: Cluster, http_server: Any, messages_api: MessagesApi) -> None:
    work = Work()
    base = await http_server(work.app)
    flow_sid = await api.create_flow(FLOW, name="crash")
    contacts = [phone() for _ in range(EXECUTIONS)]
    sids: dict[str, str] = {}

    async def start(contact: str) -> None:
        sids[contact] = (await api.start(flow_sid, to=contact, from_=CHANNEL, params={"base": base}))["sid"]

    await asyncio.gather(*(start(c) for c in contacts[: EXECUTIONS // 2]))
    while len(work.requests) < EXECUTIONS // 2:  # in flight: requests under way, results to come
        await asyncio.sleep(0.02)
    await _restart(cluster, "processor", "http_worker")
    await asyncio.gather(*(start(c) for c in contacts[EXECUTIONS // 2:]))
    while len(work.requests) < EXECUTIONS * 2:
        await asyncio.sleep(0.02)
    await _restart(cluster, "http_worker", "processor")

    for contact in contacts:
        sid = sids[contact]
        try:
            await api.wait_ended(flow_sid, sid, timeout=180)
        except AssertionError as stuck:  # say where it stopped: which requests the service saw for it
            seen = [(n, key) for execution, n, key in work.requests if execution == sid]
            raise AssertionError(f"{stuck}\nrequests the service saw for {sid}: {seen}\n"
                                 f"logs: {cluster.workdir / 'logs'}") from None
        steps = await api.steps(flow_sid, sid)
        assert path(steps) == EXPECTED, (sid, path(steps))
        assert [s["sid"] for s in steps] == list(dict.fromkeys(s["sid"] for s in steps))  # each step once
        ctx = await context(api, flow_sid, sid)
        assert ctx["flow"]["variables"] == {"count": ROUNDS}
        assert ctx["widgets"]["call"]["parsed"] == {"n": ROUNDS}
        (message,) = messages_api.messages(contact)
        assert message["body"] == f"done {ROUNDS} {ROUNDS}"
        assert ctx["widgets"]["done"]["outbound"]["Sid"] == message["sid"]

    keys: dict[tuple[str, str], set[str]] = defaultdict(set)
    for execution, n, key in work.requests:
        keys[(execution, n)].add(key)
    assert set(keys) == {(sids[c], str(n)) for c in contacts for n in range(1, ROUNDS + 1)}
    assert all(len(k) == 1 for k in keys.values()), "a repeated request must carry the same idempotency key"
    assert {len(messages_api.attempts(c)) >= 1 for c in contacts} == {True}
