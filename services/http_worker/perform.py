"""Perform one ``HttpRequest`` with Studio's rules and describe the result.

Success: a 2xx (or, for Run Function, a 2xx/3xx) within the timeout with a
body of at most 64 kB. Redirects are followed up to a bound, each hop checked
against the outbound policy. Never more than 64 kB + 1 byte of a body is read.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from yarl import URL

from shared.messages import HttpRequest, HttpResult
from shared.settings import Settings

from .policy import OutboundPolicy, RefusedDestination

__all__ = ["Performer", "outcome_class"]

_REDIRECTS = {301, 302, 303, 307, 308}


def outcome_class(status: int) -> str:
    return f"{status // 100}xx"


@dataclass
class Performer:
    session: aiohttp.ClientSession
    settings: Settings
    policy: OutboundPolicy

    async def perform(self, request: HttpRequest) -> HttpResult:
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(self._perform(request, started), self.settings.http_timeout_seconds)
        except TimeoutError:
            return self._result(request, started, False, None, "", "", "timeout",
                                f"no response within {self.settings.http_timeout_seconds:g} s")

    def _result(self, request: HttpRequest, started: float, ok: bool, status: int | None, content_type: str,
                body: str, outcome: str, error: str = "", headers: dict[str, str] | None = None) -> HttpResult:
        return HttpResult(
            request_id=request.request_id, execution_sid=request.execution_sid, route=request.route,
            token=request.token, ok=ok, status_code=status, content_type=content_type, body=body, error=error,
            outcome=outcome, elapsed=round(time.perf_counter() - started, 6), headers=headers or {},
        )

    async def _perform(self, request: HttpRequest, started: float) -> HttpResult:
        url = request.url
        headers = {"Idempotency-Key": request.request_id, "User-Agent": "Switchboard/0.1 (Studio-compatible)",
                   "I-Twilio-Idempotency-Token": request.request_id}
        auth = _auth(url)
        if request.twilio_auth:
            auth = (self.settings.account_sid, self.settings.auth_token)
        url = _strip_credentials(url)
        data: bytes | None = None
        method = request.method
        if request.body is not None and method != "GET":
            data = request.body.encode()
            headers["Content-Type"] = request.content_type
        elif request.form and method != "GET":
            data = _form(request.form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        query = [(k, v) for k, v in request.query]
        if auth:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        hops = 0
        target = URL(url, encoded=False)
        if query:
            target = target.update_query(query) if not target.query else target.extend_query(query)
        while True:
            try:
                self.policy.check_url(str(target))
            except RefusedDestination as exc:
                return self._result(request, started, False, None, "", "", "refused", str(exc))
            try:
                async with self.session.request(method, target, data=data, headers=headers,
                                                allow_redirects=False) as response:
                    status = response.status
                    if status in _REDIRECTS and "Location" in response.headers and hops < self.settings.http_max_redirects:
                        hops += 1
                        target = target.join(URL(response.headers["Location"]))
                        if urlsplit(str(target)).hostname != urlsplit(url).hostname:
                            headers.pop("Authorization", None)  # never leak credentials to another host
                        if status == 303 or (status in (301, 302) and method == "POST"):
                            method, data = "GET", None
                            headers.pop("Content-Type", None)
                        continue
                    limit = self.settings.http_max_response_bytes
                    raw = await response.content.read(limit + 1)
                    content_type = response.headers.get("Content-Type", "")
                    if len(raw) > limit:
                        return self._result(request, started, False, status, content_type, "", "too_large",
                                            f"response body exceeds {limit} bytes")
                    body = raw.decode(response.charset or "utf-8", errors="replace")
                    ok = 200 <= status < 300 or (request.accept_3xx and 300 <= status < 400)
                    extra = {}
                    concurrency = response.headers.get("x-twilio-function-concurrency")
                    if concurrency is not None:
                        extra["x-twilio-function-concurrency"] = concurrency
                    return self._result(request, started, ok, status, content_type, body, outcome_class(status),
                                        "" if ok else f"HTTP {status}", extra)
            except RefusedDestination as exc:
                return self._result(request, started, False, None, "", "", "refused", str(exc))
            except (aiohttp.ClientError, OSError, ValueError) as exc:
                return self._result(request, started, False, None, "", "", "connection_error",
                                    f"{type(exc).__name__}: {exc}")


def _form(pairs: list[list[str]]) -> bytes:
    from urllib.parse import urlencode

    return urlencode([(k, v) for k, v in pairs]).encode()


def _auth(url: str) -> tuple[str, str] | None:
    parts = urlsplit(url)
    if parts.username is None:
        return None
    from urllib.parse import unquote

    return unquote(parts.username), unquote(parts.password or "")


def _strip_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
