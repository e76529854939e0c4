"""The mixed load, through the public interfaces only: REST creates, simulated calls and inbound SMS.

Each execution gets a contact no other uses, so its history can be found by contact afterwards whatever
happened to the client's own request. What the client saw is kept in a :class:`Started` record.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from devtools.simulator import CallScript, Simulator
from tests.integration.messages_api import MessagesApi

from .flows import CHANNEL, KINDS, Kind

__all__ = ["Recorder", "Started", "Workload"]


class Recorder:
    """The service HTTP widgets call: answers 200 after a short random delay, records every request."""

    def __init__(self, seed: int) -> None:
        self.requests: list[tuple[str, str, str]] = []  # (execution sid, n, Idempotency-Key)
        self._random = random.Random(seed)
        self.app = web.Application()
        self.app.router.add_get("/work", self._work)

    async def _work(self, request: web.Request) -> web.Response:
        self.requests.append((request.query.get("e", ""), request.query.get("n", ""),
                              request.headers.get("Idempotency-Key", "")))
        await asyncio.sleep(self._random.uniform(0.01, 0.3))
        return web.json_response({"n": request.query.get("n")})


@dataclass
class Started:
    kind: str
    contact: str
    at: float
    sid: str = ""  # known for REST creates
    errors: list[str] = field(default_factory=list)  # what the client saw go wrong (non-2xx, webhook errors)
    retried: list[str] = field(default_factory=list)  # a REST create's first answer, when it was retried
    said: list[str] = field(default_factory=list)


@dataclass
class Workload:
    base: str  # the public URL (the balancer)
    account_sid: str
    auth_token: str
    messages: MessagesApi
    recorder_url: str
    app_url: str
    seed: int
    flows: dict[str, str] = field(default_factory=dict)  # kind → flow sid
    started: list[Started] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)  # errors are stamped with seconds since (the faults' clock)
    _session: aiohttp.ClientSession | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": aiohttp.encode_basic_auth(self.account_sid, self.auth_token)}

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                              connector=aiohttp.TCPConnector(limit=200, force_close=True))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    async def post(self, path: str, data: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, Any]:
        async with self.session.post(self.base + path, data=data, headers={**self.auth, **(headers or {})}) as r:
            raw = await r.read()
            try:
                return r.status, orjson.loads(raw)
            except orjson.JSONDecodeError:
                return r.status, raw.decode(errors="replace")

    async def get(self, url: str) -> tuple[int, Any]:
        async with self.session.get(url if url.startswith("http") else self.base + url, headers=self.auth) as r:
            raw = await r.read()
            try:
                return r.status, orjson.loads(raw)
            except orjson.JSONDecodeError:
                return r.status, raw.decode(errors="replace")

    async def create_flows(self) -> None:
        for kind in KINDS:
            definition = kind.flow
            if kind.subflow is not None:
                self.flows[kind.name + ".sub"] = await self._create_flow(kind.name + ".sub", kind.subflow)
                definition = orjson.loads(orjson.dumps(definition).replace(b"{SUB}",
                                                                           self.flows[kind.name + ".sub"].encode()))
            self.flows[kind.name] = await self._create_flow(kind.name, definition)

    async def _create_flow(self, name: str, definition: dict[str, Any]) -> str:
        # Voice triggers have no flow.data: the far ends' URLs are written into the definition.
        text = orjson.dumps(definition).decode().replace("{{flow.data.app}}", self.app_url)
        code, body = await self.post("/v2/Flows", {"FriendlyName": f"faults {name}", "Status": "published",
                                                   "Definition": text})
        if code != 201:
            raise RuntimeError(f"flow {name} not created: {code} {body}")
        return str(body["sid"])

    def _stamp(self, error: str) -> str:
        return f"[{time.monotonic() - self.t0:.1f}s] {error}"

    def pick(self, rng: random.Random) -> Kind:
        return rng.choices(KINDS, weights=[k.weight for k in KINDS])[0]

    async def run_one(self, kind: Kind, contact: str, sim: Simulator) -> Started:
        record = Started(kind.name, contact, time.time())
        self.started.append(record)
        flow = self.flows[kind.name]
        try:
            if kind.name in ("http", "subflow"):
                await self._rest(record, flow, {"base": self.recorder_url})
            elif kind.name == "call_return":
                transcript = await sim.call(flow, CallScript(inputs=["1"]), from_=contact, to=CHANNEL)
                record.said = transcript.said
                record.errors += [self._stamp(t.text) for t in transcript.of("error")]
            elif kind.name == "call_timeout":
                transcript = await sim.call(flow, CallScript(status_callback=False), from_=contact, to=CHANNEL)
                record.said = transcript.said
                record.errors += [self._stamp(t.text) for t in transcript.of("error")]
            elif kind.name == "sms_reply":
                # The contact answers the question whatever the REST client was told: a create answered 503
                # ("retry later") may still have started the execution, and its question still arrives.
                await self._rest(record, flow, {})
                await self._reply_when_asked(record, flow, sim)
            else:
                await self._rest(record, flow, {})
        except (TimeoutError, aiohttp.ClientError) as exc:
            record.errors.append(self._stamp(f"client: {type(exc).__name__}: {exc}"))
        return record

    async def _rest(self, record: Started, flow: str, params: dict[str, Any]) -> bool:
        """Create with an idempotency token, as a careful client does, and retry once with the same token if the
        first answer was not a success (a 503 in a failover, a 502 from a replica killed mid-request): the
        retry must answer the one execution, never start a second (verify counts executions per contact)."""
        data = {"To": record.contact, "From": CHANNEL}
        if params:
            data["Parameters"] = orjson.dumps(params).decode()
        headers = {"I-Twilio-Idempotency-Token": f"faults-{self.seed}-{record.contact}"}
        for attempt in range(2):
            code, body = await self.post(f"/v2/Flows/{flow}/Executions", data, headers)
            if code == 201:
                record.sid = str(body["sid"])
                return True
            error = self._stamp(f"REST create: {code} {str(body)[:200]}")
            if attempt == 0:
                record.retried.append(error)
                await asyncio.sleep(1.0)
            else:
                record.errors.append(error)
        return False

    async def _reply_when_asked(self, record: Started, flow: str, sim: Simulator) -> None:
        """The contact answers once the question has reached them (as a person would)."""
        deadline = time.monotonic() + 120
        while not self.messages.messages(record.contact):
            if time.monotonic() > deadline:
                if not record.errors:  # with a failed create, no question is a possible outcome
                    record.errors.append(self._stamp("the question never arrived"))
                return
            await asyncio.sleep(0.2)
        transcript = await sim.message(flow, "Bob", from_=record.contact, to=CHANNEL)
        record.errors += [self._stamp(t.text) for t in transcript.of("error")]
