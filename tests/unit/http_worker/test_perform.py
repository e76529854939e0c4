"""Make HTTP Request / Run Function outbound rules, pinned against a real aiohttp server on 127.0.0.1.

One case per rule of the Make HTTP Request page (seeds/003) and of the outbound
policy; each case names the rule it pins. The timeout here is shortened to keep
the suite quick; the real 10 s default is pinned in tests/integration/test_http_worker.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from services.http_worker.perform import Performer, read_capped
from services.http_worker.policy import OutboundPolicy
from services.http_worker.service import make_session
from shared.messages import HttpRequest, HttpResult
from shared.settings import Settings

from .conftest import Target, closed_port

LOOPBACK_ONLY = ("127.0.0.1/32",)  # the test server is allowed; every other private address is not


def request(url: str, **overrides: Any) -> HttpRequest:
    base = HttpRequest(
        request_id="RQ" + "a" * 32, execution_sid="FN" + "b" * 32, route="FW1:+15550001111", token="t1",
        purpose="http", method="GET", url=url, content_type="application/x-www-form-urlencoded;charset=utf-8",
        body=None, form=[], query=[], twilio_auth=False, accept_3xx=False, created_at=0.0,
    )
    return replace(base, **overrides)


class TableResolver(AbstractResolver):
    """DNS stand-in: answers names from a table (the one thing a test cannot get from a real resolver offline)."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        name = host.rstrip(".")
        if name not in self.table:
            raise OSError(f"unknown host {name}")
        return [{"hostname": name, "host": self.table[name], "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": 0}]

    async def close(self) -> None:
        return None


@dataclass
class Worker:
    """A Performer built exactly as the service builds it, with chosen settings."""

    settings: Settings
    resolver: AbstractResolver | None = None
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)

    async def perform(self, req: HttpRequest) -> HttpResult:
        policy = OutboundPolicy(self.settings.outbound_networks, self.settings.outbound_hosts)
        session = make_session(self.settings, policy, self.resolver)
        self.sessions.append(session)
        return await Performer(session, self.settings, policy).perform(req)


@pytest.fixture
async def make_worker() -> AsyncIterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def make(resolver: AbstractResolver | None = None, **settings: Any) -> Worker:
        values: dict[str, Any] = {"outbound_allow": LOOPBACK_ONLY, "http_timeout_seconds": 0.5} | settings
        worker = Worker(Settings(**values), resolver)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        for session in worker.sessions:
            await session.close()


@dataclass(frozen=True)
class Case:
    path: str  # appended to the server's base URL; "{base}" / "{port}" are substituted for absolute URLs
    expect: dict[str, Any]
    request: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    sent: int | None = None  # how many requests the server must have recorded (None: not checked)
    dns: dict[str, str] | None = None


CASES = {
    # -- success and failure by status, time and size --------------------------------------------
    "a 2xx JSON object succeeds with body, content type and status":
        Case("/ok", {"ok": True, "status_code": 200, "outcome": "2xx", "content_type": "application/json; charset=utf-8",
                     "body": '{"message": "Hi", "person": {"name": "Bob", "age": 40}}', "error": ""}),
    "a 204 without Content-Type succeeds with an empty body":
        Case("/no-content", {"ok": True, "status_code": 204, "outcome": "2xx", "content_type": "", "body": ""}),
    "a JSON array body succeeds and is passed on unparsed":
        Case("/array", {"ok": True, "status_code": 200, "body": '[{"a": 1}, {"b": 2}]'}),
    "a text body succeeds and is passed on as text":
        Case("/text", {"ok": True, "content_type": "text/plain; charset=utf-8", "body": "plain words"}),
    "a 4xx fails with its status and body":
        Case("/status/404", {"ok": False, "status_code": 404, "outcome": "4xx", "body": "status body", "error": "HTTP 404"}),
    "a 5xx fails with its status and body":
        Case("/status/500", {"ok": False, "status_code": 500, "outcome": "5xx", "body": "status body", "error": "HTTP 500"}),
    "a final 3xx fails for Make HTTP Request":
        Case("/status/300", {"ok": False, "status_code": 300, "outcome": "3xx"}),
    "a final 3xx succeeds for Run Function":
        Case("/status/300", {"ok": True, "status_code": 300, "outcome": "3xx"}, request={"accept_3xx": True, "purpose": "function"}),
    "no response within the timeout fails as timeout":
        Case("/slow?seconds=3", {"ok": False, "status_code": None, "outcome": "timeout", "error": "no complete response within 0.5 s"}),
    "a refused connection fails as connection_error":
        Case("http://127.0.0.1:{closed}/", {"ok": False, "status_code": None, "outcome": "connection_error"}),
    "a body of exactly 64 kB succeeds":
        Case("/bytes/65536", {"ok": True, "status_code": 200, "outcome": "2xx"}),
    "a 65 kB body fails as too_large":
        Case("/bytes/66560", {"ok": False, "status_code": 200, "outcome": "too_large", "body": "",
                              "error": "the response body is larger than 65536 bytes"}),
    "an endless streamed body fails as too_large without being read to the end":
        Case("/endless", {"ok": False, "status_code": 200, "outcome": "too_large", "body": ""}, settings={"http_timeout_seconds": 5}),
    "the declared charset decodes the body":
        Case("/latin", {"ok": True, "body": "café"}),
    "an unknown charset falls back to UTF-8 instead of failing":
        Case("/bogus-charset", {"ok": True, "body": "ok"}),
    # -- redirects ----------------------------------------------------------------------------------
    "a redirect is followed to a 2xx":
        Case("/redirect?to=/ok", {"ok": True, "status_code": 200, "outcome": "2xx"}, sent=2),
    "more redirects than the bound fail with the last 3xx":
        Case("/loop/0", {"ok": False, "status_code": 302, "outcome": "3xx", "error": "HTTP 302 after 2 redirects (at most 2 are followed)"},
             settings={"http_max_redirects": 2}),
    "a redirect to a loopback IP literal is refused although the first hop was allowed by name":
        Case("http://localhost:{port}/redirect?to=http://127.0.0.2:{port}/ok", {"ok": False, "outcome": "refused", "status_code": None,
                                                                                 "error": "127.0.0.2 is a private, loopback or link-local address"},
             settings={"outbound_allow": ("localhost",)}, sent=1),
    "a redirect to a 10.x address is refused":
        Case("/redirect?to=http://10.1.2.3/", {"ok": False, "outcome": "refused", "error": "10.1.2.3 is a private, loopback or link-local address"}),
    "a redirect to the link-local metadata address is refused":
        Case("/redirect?to=http://169.254.169.254/latest/meta-data/", {"ok": False, "outcome": "refused"}),
    "a redirect to a name resolving to a private address is refused":
        Case("/redirect?to=http://internal.example:{port}/ok", {"ok": False, "outcome": "refused",
                                                                 "error": "internal.example resolves only to private, loopback or link-local addresses"},
             dns={"internal.example": "127.0.0.3"}, sent=1),
    "a redirect to a non-http scheme is invalid":
        Case("/redirect?to=file:///etc/passwd", {"ok": False, "outcome": "invalid"}),
    # -- the outbound policy on the first hop ---------------------------------------------------------
    "a loopback IP literal is refused without a request":
        Case("/ok", {"ok": False, "outcome": "refused", "status_code": None, "error": "127.0.0.1 is a private, loopback or link-local address"},
             settings={"outbound_allow": ()}, sent=0),
    "localhost is refused without a request":
        Case("http://localhost:{port}/ok", {"ok": False, "outcome": "refused", "error": "localhost is a loopback name"},
             settings={"outbound_allow": ()}, sent=0),
    "a name resolving to a private address is refused without a request":
        Case("http://rebind.example:{port}/ok", {"ok": False, "outcome": "refused"}, dns={"rebind.example": "127.0.0.1"},
             settings={"outbound_allow": ()}, sent=0),
    "an IPv4-mapped IPv6 loopback literal is refused":
        Case("http://[::ffff:127.0.0.1]:{port}/ok", {"ok": False, "outcome": "refused"}, settings={"outbound_allow": ()}, sent=0),
    "a decimal-integer spelling of loopback is refused":
        Case("http://2130706433:{port}/ok", {"ok": False, "outcome": "refused", "error": "2130706433 is not a canonical IPv4 address"}, sent=0),
    "a shortened spelling of loopback is refused":
        Case("http://127.1:{port}/ok", {"ok": False, "outcome": "refused"}, sent=0),
    "an allow-listed network may be reached":
        Case("/ok", {"ok": True, "outcome": "2xx"}, settings={"outbound_allow": ("127.0.0.0/8",)}, sent=1),
    "an allow-listed host name may be reached although it is loopback":
        Case("http://localhost:{port}/ok", {"ok": True, "outcome": "2xx"}, settings={"outbound_allow": ("localhost",)}, sent=1),
    "a name resolving to an allow-listed network may be reached":
        Case("http://svc.internal:{port}/ok", {"ok": True, "outcome": "2xx"}, dns={"svc.internal": "127.0.0.1"}, sent=1),
    # -- invalid requests: failed without a request ----------------------------------------------------
    "a non-http scheme is invalid": Case("ftp://127.0.0.1:{port}/ok", {"ok": False, "outcome": "invalid", "status_code": None}, sent=0),
    "a URL with a space in the host is invalid": Case("http://exa mple.com/", {"ok": False, "outcome": "invalid"}, sent=0),
    "a URL without a host is invalid": Case("http:///ok", {"ok": False, "outcome": "invalid"}, sent=0),
    "a relative URL is invalid": Case("ok", {"ok": False, "outcome": "invalid"}, sent=0),
    "an empty URL is invalid": Case("", {"ok": False, "outcome": "invalid"}, sent=0),
    "a URL with a port out of range is invalid": Case("http://127.0.0.1:99999/", {"ok": False, "outcome": "invalid"}, sent=0),
    "an unterminated IPv6 literal is invalid": Case("http://[::1/", {"ok": False, "outcome": "invalid"}, sent=0),
    "a method other than GET or POST is invalid": Case("/echo", {"ok": False, "outcome": "invalid"}, request={"method": "DELETE"}, sent=0),
    "add_twilio_auth to a non-Twilio host is refused without a request":
        Case("/echo", {"ok": False, "outcome": "refused",
                       "error": "add_twilio_auth is set but the URL is not a Twilio API URL; nothing was sent"},
             request={"twilio_auth": True}, sent=0),
}


def _url(case: Case, target: Target) -> str:
    if case.path.startswith("/"):
        return target.base + case.path.format(port=target.port)
    return case.path.format(port=target.port, closed=closed_port())


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_outbound_rule(case: Case, target: Target, make_worker: Callable[..., Worker]) -> None:
    url = _url(case, target)
    worker = make_worker(TableResolver(case.dns) if case.dns is not None else None, **case.settings)
    result = await worker.perform(request(url, **case.request))
    got = {key: getattr(result, key) for key in case.expect}
    assert got == case.expect
    assert (result.request_id, result.execution_sid, result.route, result.token) == (
        "RQ" + "a" * 32, "FN" + "b" * 32, "FW1:+15550001111", "t1")
    if case.sent is not None:
        assert len(target.seen) == case.sent


async def test_a_body_is_read_to_at_most_the_cap_plus_one_byte(target: Target) -> None:
    """The cap is enforced while reading: an endless stream yields exactly limit + 1 bytes."""
    async with aiohttp.ClientSession() as session, session.get(target.url("/endless")) as response:
        raw = await read_capped(response.content, 65536)
        response.close()
    assert len(raw) == 65537


async def test_an_endless_body_is_abandoned_and_the_server_sees_the_connection_close(
        target: Target, make_worker: Callable[..., Worker]) -> None:
    result = await make_worker(http_timeout_seconds=5).perform(request(target.url("/endless")))
    assert result.outcome == "too_large"
    for _ in range(100):  # the server notices the closed connection on its next writes
        if target.streamed:
            break
        await asyncio.sleep(0.05)
    assert target.streamed and target.streamed[0] < 512 * 1024 * 1024


# -- request encoding ------------------------------------------------------------------------------

def _standard_headers(headers: dict[str, str]) -> dict[str, str]:
    """What the server saw minus the headers every HTTP/1.1 client sends."""
    standard = {"Host", "Accept", "Accept-Encoding", "Content-Length", "Content-Type", "Connection"}
    return {k: v for k, v in headers.items() if k not in standard}


async def test_a_get_sends_parameters_as_the_query_string_after_the_urls_own(target: Target, make_worker: Callable[..., Worker]) -> None:
    result = await make_worker().perform(request(target.url("/echo?fixed=1"), query=[["name", "Ann Lee"], ["n", "2"]]))
    seen = target.seen[0]
    assert result.ok and seen["method"] == "GET" and seen["body"] == ""
    assert seen["query"] == [["fixed", "1"], ["name", "Ann Lee"], ["n", "2"]]


async def test_a_form_post_sends_parameters_form_encoded(target: Target, make_worker: Callable[..., Worker]) -> None:
    await make_worker().perform(request(target.url("/echo"), method="POST", form=[["Body", "héllo & bye"], ["To", "+1555"]]))
    seen = target.seen[0]
    assert seen["method"] == "POST" and seen["query"] == []
    assert seen["headers"]["Content-Type"] == "application/x-www-form-urlencoded;charset=utf-8"
    assert seen["body"] == "Body=h%C3%A9llo+%26+bye&To=%2B1555"


async def test_a_json_post_sends_the_body_as_the_payload_with_the_requests_content_type(
        target: Target, make_worker: Callable[..., Worker]) -> None:
    body = '{"text": "an inbound message"}'
    await make_worker().perform(request(target.url("/echo"), method="POST", content_type="application/json;charset=utf-8",
                                        body=body, query=[["k", "v"]]))
    seen = target.seen[0]
    assert seen["headers"]["Content-Type"] == "application/json;charset=utf-8"
    assert seen["body"] == body and seen["query"] == [["k", "v"]]


async def test_only_user_agent_and_idempotency_key_are_added(target: Target, make_worker: Callable[..., Worker]) -> None:
    await make_worker().perform(request(target.url("/echo")))
    assert _standard_headers(target.seen[0]["headers"]) == {
        "User-Agent": "Switchboard/0.1 (Studio-compatible)", "Idempotency-Key": "RQ" + "a" * 32}


async def test_the_idempotency_key_is_the_same_when_a_request_is_repeated(target: Target, make_worker: Callable[..., Worker]) -> None:
    worker = make_worker()
    req = request(target.url("/echo"), method="POST", form=[["a", "1"]])
    await worker.perform(req)
    await worker.perform(req)  # e.g. repeated after a crash, from the same HttpRequest
    assert [s["headers"]["Idempotency-Key"] for s in target.seen] == ["RQ" + "a" * 32] * 2


async def test_basic_auth_credentials_in_the_url_are_sent_as_authorization_and_stripped(
        target: Target, make_worker: Callable[..., Worker]) -> None:
    url = f"http://ann:p%40ss@127.0.0.1:{target.port}/echo"
    result = await make_worker().perform(request(url))
    assert result.ok
    assert target.seen[0]["auth"] == "ann:p@ss"
    assert "ann" not in target.seen[0]["host"]


async def test_add_twilio_auth_uses_the_account_credentials_over_url_credentials(
        target: Target, make_worker: Callable[..., Worker]) -> None:
    worker = make_worker(twilio_api_base=target.base)
    url = f"http://ann:secret@127.0.0.1:{target.port}/echo"
    result = await worker.perform(request(url, method="POST", twilio_auth=True, purpose="message", form=[["Body", "hi"]]))
    assert result.ok
    settings = worker.settings
    headers = target.seen[0]["headers"]
    assert target.seen[0]["auth"] == f"{settings.account_sid}:{settings.auth_token}"
    assert headers["I-Twilio-Idempotency-Token"] == "RQ" + "a" * 32  # Twilio's own API de-duplicates on it


async def test_credentials_are_not_forwarded_when_a_redirect_leaves_the_origin(
        target: Target, make_worker: Callable[..., Worker]) -> None:
    other = f"http://localhost:{target.port}/echo"
    url = f"http://ann:pw@127.0.0.1:{target.port}/redirect?to={other}"
    result = await make_worker(outbound_allow=("127.0.0.1/32", "localhost")).perform(request(url))
    assert result.ok
    assert target.seen[0]["auth"] == "ann:pw" and target.seen[1]["auth"] == ""


async def test_credentials_follow_a_redirect_within_the_origin(target: Target, make_worker: Callable[..., Worker]) -> None:
    url = f"http://ann:pw@127.0.0.1:{target.port}/redirect?to=/echo"
    await make_worker().perform(request(url))
    assert [s["auth"] for s in target.seen] == ["ann:pw", "ann:pw"]


@pytest.mark.parametrize(("status", "method", "body"), [
    (303, "GET", ""), (302, "GET", ""), (301, "GET", ""), (307, "POST", "a=1"), (308, "POST", "a=1"),
], ids=["303 turns a POST into a GET", "302 turns a POST into a GET", "301 turns a POST into a GET",
        "307 repeats the POST with its body", "308 repeats the POST with its body"])
async def test_a_redirected_post(status: int, method: str, body: str, target: Target, make_worker: Callable[..., Worker]) -> None:
    url = target.url(f"/redirect?status={status}&to=/echo")
    result = await make_worker().perform(request(url, method="POST", form=[["a", "1"]]))
    assert result.ok
    final = target.seen[1]
    assert (final["method"], final["body"]) == (method, body)
    assert ("Content-Type" in final["headers"]) == (method == "POST")
