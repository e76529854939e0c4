"""Perform one ``HttpRequest`` with Studio's rules and report the facts as an ``HttpResult``.

Success (``ok``): a 2xx - or, for Run Function (``accept_3xx``), a 2xx/3xx -
within ``http_timeout_seconds`` (Studio: 10 s, for all hops together) with a
body of at most ``http_max_response_bytes`` (64 kB). Everything else fails, with
one outcome label (bounded, used as a metric label):

====================  =====================================================
``2xx`` … ``5xx``     a final response with that status class
``timeout``           no complete response within the timeout
``too_large``         the body is over the cap (never read past cap + 1 byte)
``refused``           the outbound policy refused a hop, or ``add_twilio_auth``
                      with a URL that is not a Twilio API (nothing sent)
``connection_error``  DNS failure, refused/reset connection, broken response
``invalid``           the URL (or a redirect target) is not a valid http(s)
                      URL, or the method is not GET/POST (nothing sent)
====================  =====================================================

Redirects are followed by hand, up to ``http_max_redirects`` hops, so that
every hop passes :meth:`OutboundPolicy.check_url` (aiohttp's own redirect
handling would connect to an IP-literal target without asking the resolver).
After the last allowed hop the 3xx itself is the final response.

:meth:`Performer.perform` never raises (except on cancellation): a request
that cannot be performed still produces a result, so no execution waits forever.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import time
from dataclasses import dataclass

import aiohttp

from shared.messages import HttpRequest, HttpResult
from shared.settings import Settings

from .policy import OutboundPolicy, RefusedDestination
from .prepare import REDIRECT_STATUSES, InvalidRequest, NotTwilioApi, Prepared, classify, prepare, redirect

__all__ = ["Performer", "read_capped"]

log = logging.getLogger(__name__)

#: Response headers reported back (Run Function exposes this one to the flow).
_REPORTED_HEADERS = ("x-twilio-function-concurrency",)


async def read_capped(content: aiohttp.StreamReader, limit: int) -> bytes:
    """Read the body up to ``limit + 1`` bytes - enough to tell "too large" - and never more."""
    buffer = bytearray()
    while len(buffer) <= limit:
        chunk = await content.read(limit + 1 - len(buffer))
        if not chunk:
            break
        buffer += chunk
    return bytes(buffer)


def _decode(raw: bytes, charset: str | None) -> str:
    encoding = "utf-8"
    if charset:
        try:
            encoding = codecs.lookup(charset).name
        except LookupError:
            pass  # an unknown charset label: fall back rather than fail a good response
    return raw.decode(encoding, errors="replace")


@dataclass
class _Final:
    """A final response: status, content type, body (decoded) and the reported headers."""

    status: int
    content_type: str
    body: str
    headers: dict[str, str]
    redirects: int
    too_large: bool = False


class _Failure(Exception):
    def __init__(self, outcome: str, error: str) -> None:
        super().__init__(error)
        self.outcome, self.error = outcome, error


@dataclass
class Performer:
    """Performs requests over one shared session (whose connector must use a ``GuardedResolver``)."""

    session: aiohttp.ClientSession
    settings: Settings
    policy: OutboundPolicy

    async def perform(self, request: HttpRequest) -> HttpResult:
        started = time.perf_counter()

        def result(ok: bool, outcome: str, error: str = "", final: _Final | None = None) -> HttpResult:
            return HttpResult(
                request_id=request.request_id, execution_sid=request.execution_sid, route=request.route,
                token=request.token, ok=ok, status_code=final.status if final else None,
                content_type=final.content_type if final else "", body=final.body if final else "",
                error=error, outcome=outcome, elapsed=round(time.perf_counter() - started, 6),
                headers=final.headers if final else {},
            )

        try:
            hop = prepare(request, self.settings)
        except InvalidRequest as exc:
            return result(False, "invalid", str(exc))
        except NotTwilioApi as exc:
            return result(False, "refused", str(exc))
        timeout = self.settings.http_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                final = await self._exchange(hop)
        except TimeoutError:
            return result(False, "timeout", f"no complete response within {timeout:g} s")
        except _Failure as exc:
            return result(False, exc.outcome, exc.error)
        except Exception as exc:  # noqa: BLE001 - a bug must still answer the execution, not strand it
            log.exception("unexpected error performing %s", request.request_id)
            return result(False, "connection_error", f"{type(exc).__name__}: {exc}")
        if final.too_large:
            limit = self.settings.http_max_response_bytes
            return result(False, "too_large", f"the response body is larger than {limit} bytes", final)
        ok, outcome = classify(final.status, request.accept_3xx)
        error = ""
        if not ok:
            error = f"HTTP {final.status}"
            if final.status in REDIRECT_STATUSES and final.redirects >= self.settings.http_max_redirects:
                error += f" after {final.redirects} redirects (at most {self.settings.http_max_redirects} are followed)"
        return result(ok, outcome, error, final)

    async def _exchange(self, hop: Prepared) -> _Final:
        """Send ``hop`` and follow redirects; raise :class:`_Failure` for a refused/invalid/failed hop."""
        limit = self.settings.http_max_response_bytes
        redirects = 0
        while True:
            try:
                self.policy.check_url(hop.url)
            except RefusedDestination as exc:
                raise _Failure("refused", str(exc)) from None
            try:
                async with self.session.request(hop.method, hop.url, data=hop.data, headers=hop.headers,
                                                allow_redirects=False) as response:
                    location = response.headers.get("Location")
                    if (response.status in REDIRECT_STATUSES and location
                            and redirects < self.settings.http_max_redirects):
                        try:
                            hop = redirect(hop, response.status, location)
                        except InvalidRequest as exc:
                            raise _Failure("invalid", str(exc)) from None
                        redirects += 1
                        response.close()  # never read a redirect's body; do not reuse its connection
                        continue
                    content_type = response.headers.get("Content-Type", "")
                    reported = {k: response.headers[k] for k in _REPORTED_HEADERS if k in response.headers}
                    length = response.content_length
                    if length is not None and length > limit:
                        response.close()
                        return _Final(response.status, content_type, "", reported, redirects, too_large=True)
                    raw = await read_capped(response.content, limit)
                    if len(raw) > limit:
                        response.close()
                        return _Final(response.status, content_type, "", reported, redirects, too_large=True)
                    return _Final(response.status, content_type, _decode(raw, response.charset), reported,
                                  redirects)
            except RefusedDestination as exc:  # from GuardedResolver: the name resolves only to refused addresses
                raise _Failure("refused", str(exc)) from None
            except aiohttp.InvalidURL as exc:
                raise _Failure("invalid", f"{type(exc).__name__}: {exc}") from None
            except aiohttp.ServerTimeoutError:
                raise  # a TimeoutError: reported as ``timeout``
            except (aiohttp.ClientError, OSError) as exc:
                raise _Failure("connection_error", f"{type(exc).__name__}: {exc}") from None
