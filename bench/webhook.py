"""Incoming-call webhook → TwiML latency, open loop, signed like Twilio signs."""

from __future__ import annotations

import time
import uuid
from typing import Any

import aiohttp
from twilio.request_validator import RequestValidator

from bench.common import summarize
from bench.load import open_loop

__all__ = ["run_webhooks"]


async def run_webhooks(base_url: str, public_base: str, account_sid: str, auth_token: str, flow_sid: str,
                       rate: float, duration: float) -> dict[str, Any]:
    path = f"/v1/Accounts/{account_sid}/Flows/{flow_sid}"
    validator = RequestValidator(auth_token)
    connector = aiohttp.TCPConnector(limit=1024)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call(i: int) -> str | None:
            params = {"CallSid": "CA" + uuid.uuid4().hex, "AccountSid": account_sid, "From": f"+1{3000000000 + i}",
                      "To": "+15559990000", "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}
            signature = validator.compute_signature(public_base + path, params)
            async with session.post(base_url + path, data=params, headers={"X-Twilio-Signature": signature}) as r:
                text = await r.text()
                if r.status != 200:
                    return f"http_{r.status}"
                if "<Say" not in text:
                    return "no_say" if "Redirect" not in text else "keepalive"
                return None

        started = time.perf_counter()
        load = await open_loop(rate, duration, call)
        wall = time.perf_counter() - started
    return {"target_rate": rate, "duration_s": duration, "sent": load.sent, "ok": load.ok, "errors": load.errors,
            "generator_behind": load.behind, "latency_seconds": summarize(load.latencies), "wall_seconds": wall}
