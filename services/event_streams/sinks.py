"""Webhook sinks: POST batches of Studio events to the operator's URLs, signed like Twilio's webhooks, with retries.

Each POST carries a JSON array of events (``Content-Type: application/json``).
Like Twilio's JSON-bodied webhooks, the URL gets a ``bodySHA256`` query
parameter (hex SHA-256 of the body) and ``X-Twilio-Signature`` signs that URL
with the account's auth token, so ``twilio.request_validator.RequestValidator
.validate(url, body, signature)`` accepts it. A 2xx answer is delivered;
anything else (another status, a timeout, a refused connection) is retried
after 0.5, 1, 2, 4… seconds, ``attempts`` times in all, then counted as
failed and logged — a sink that is down never stops the stream (the Kafka
topic keeps every event). Sinks are configured by the operator
(``SWITCHBOARD_EVENT_STREAM_SINKS``), so they may be on private networks.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson
from twilio.request_validator import RequestValidator

from shared import metrics

__all__ = ["MAX_EVENTS_PER_POST", "WebhookSinks", "signed_url"]

log = logging.getLogger(__name__)

MAX_EVENTS_PER_POST = 100


def signed_url(url: str, body: bytes) -> str:
    """``url`` with the body's hash, the way Twilio signs JSON webhooks."""
    separator = "&" if urlsplit(url).query else "?"
    return f"{url}{separator}{urlencode({'bodySHA256': hashlib.sha256(body).hexdigest()})}"


class WebhookSinks:
    """Delivers event batches to every configured sink, in order, each with bounded retries."""

    def __init__(self, urls: Sequence[str], auth_token: str, session: aiohttp.ClientSession, attempts: int = 5,
                 first_delay: float = 0.5, timeout: float = 10.0,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.urls = list(urls)
        self.validator = RequestValidator(auth_token)
        self.session = session
        self.attempts, self.first_delay, self.timeout, self.sleep = attempts, first_delay, timeout, sleep

    async def deliver(self, events: Sequence[dict[str, Any]]) -> None:
        for start in range(0, len(events), MAX_EVENTS_PER_POST):
            body = orjson.dumps(list(events[start:start + MAX_EVENTS_PER_POST]))
            for url in self.urls:
                delivered = await self._post(url, body)
                count = len(events[start:start + MAX_EVENTS_PER_POST])
                metrics.EVENT_STREAM_EVENTS.labels("sink", "delivered" if delivered else "failed").inc(count)

    async def _post(self, url: str, body: bytes) -> bool:
        target = signed_url(url, body)
        headers = {"Content-Type": "application/json", "User-Agent": "Switchboard-EventStreams/1",
                   "X-Twilio-Signature": str(self.validator.compute_signature(target, {}))}
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            problem = ""
            try:
                async with self.session.post(target, data=body, headers=headers,
                                             timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
                    if 200 <= response.status < 300:
                        return True
                    problem = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                await self.sleep(delay)
                delay *= 2
            else:
                log.warning("event stream sink gave up", extra={"sink": urlsplit(url).netloc, "error": problem,
                                                                "attempts": attempt})
        return False
