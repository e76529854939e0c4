"""Make HTTP Request and Run Function end to end against real local HTTP servers, and the examples of the
Make HTTP Request page (seed 003) run as flows: the retry counter loop, posting an inbound message body to a
webhook as JSON, and ``widgets.X.parsed.person.name``."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from devtools.simulator import Simulator
from tests.integration.messages_api import MessagesApi
from tests.integration.widget_flows import context, definition, only_execution, path, phone, split, w

BOB = {"message": "Hi", "person": {"name": "Bob", "age": 40}}
CHANNEL = "+15559990000"


class Service:
    """The flows' HTTP counterpart: records every request it receives."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.app = web.Application()
        routes = [
            ("GET", "/person", lambda r: web.json_response(BOB)),
            ("GET", "/no-content", lambda r: web.Response(status=204)),
            ("GET", "/redirect", lambda r: web.HTTPFound("/person")),
            ("GET", "/missing", lambda r: web.json_response({"error": "nope"}, status=404)),
            ("GET", "/broken", lambda r: web.Response(status=500, text="down")),
            ("GET", "/array", lambda r: web.json_response([{"a": 1}])),
            ("GET", "/text", lambda r: web.Response(text="hello")),
            ("GET", "/huge", lambda r: web.Response(body=b"x" * (65 * 1024), content_type="text/plain")),
            ("GET", "/auth", self.auth),
            ("GET", "/slow", self.slow),
            ("GET", "/flaky", lambda r: web.Response(status=503, text="busy")),
            ("POST", "/hook", self.hook),
            ("POST", "/fn", self.fn),
        ]
        for method, route, handler in routes:
            self.app.router.add_route(method, route, self.recording(handler))

    def recording(self, handler: Any) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            self.seen.append({"path": request.path, "query": dict(request.query), "body": body,
                              "headers": dict(request.headers)})
            result = handler(request)
            if asyncio.iscoroutine(result):
                result = await result
            return result  # type: ignore[no-any-return]
        return handle

    def hits(self, route: str, marker: str | None = None) -> list[dict[str, Any]]:
        return [s for s in self.seen if s["path"] == route and (marker is None or s["query"].get("m") == marker)]

    @staticmethod
    def auth(request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(b"ann:s3cret").decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"user": "ann"})

    @staticmethod
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(11)
        return web.json_response({"late": True})

    @staticmethod
    async def hook(request: web.Request) -> web.Response:
        return web.json_response({"received": orjson.loads(await request.read())})

    @staticmethod
    async def fn(request: web.Request) -> web.Response:
        form = await request.post()
        return web.json_response({"echo": dict(form)}, headers={"x-twilio-function-concurrency": "1"})


@pytest.fixture
async def service(http_server: Any) -> tuple[Service, str]:
    svc = Service()
    return svc, await http_server(svc.app)


@pytest.fixture
async def sim(cluster: Any, settings: Any) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Simulator(cluster.ingress_url, settings.account_sid, settings.auth_token, session)


def one_request(**props: Any) -> dict[str, Any]:
    return definition("call", w("call", "make-http-request", {"success": None, "failed": None}, **props))


# (id, url template under the service base — "{base}" is replaced —, extra props, event, checks on widgets.call)
RULES: list[tuple[str, str, dict[str, Any], str, dict[str, Any]]] = [
    ("a 2xx JSON object takes success and is parsed", "{base}/person", {}, "success",
     {"status_code": 200, "parsed": BOB}),
    ("a 204 without content takes success", "{base}/no-content", {}, "success", {"status_code": 204, "body": ""}),
    ("a redirect is followed to its target", "{base}/redirect", {}, "success", {"status_code": 200, "parsed": BOB}),
    ("a 4xx takes failed with the response kept", "{base}/missing", {}, "failed",
     {"status_code": 404, "parsed": {"error": "nope"}, "error": "HTTP 404"}),
    ("a 5xx takes failed", "{base}/broken", {}, "failed", {"status_code": 500, "body": "down"}),
    ("a top-level array is not parsed", "{base}/array", {}, "success",
     {"status_code": 200, "body": '[{"a": 1}]', "parsed": None}),
    ("a text body is not parsed", "{base}/text", {}, "success",
     {"body": "hello", "content_type": "text/plain; charset=utf-8", "parsed": None}),
    ("a body over 64 kB takes failed", "{base}/huge", {}, "failed", {"body": "", "parsed": None}),
    ("credentials in the URL are sent as basic auth", "{auth}/auth", {}, "success",
     {"status_code": 200, "parsed": {"user": "ann"}}),
    ("no response within 10 s takes failed", "{base}/slow", {}, "failed", {"status_code": None}),
    ("add_twilio_auth to a host that is not Twilio takes failed without sending", "{base}/person",
     {"add_twilio_auth": True}, "failed", {"status_code": None}),
    ("a private address is refused", "http://10.255.255.1/x", {}, "failed", {"status_code": None}),
    ("a link-local address is refused", "http://169.254.169.254/latest/meta-data", {}, "failed",
     {"status_code": None}),
    ("a URL that does not render to a URL takes failed without a request", "{{flow.data.nothing}}/person", {},
     "failed", {"status_code": None}),
]


async def test_every_make_http_request_rule_against_a_real_server(
        api: Any, service: tuple[Service, str]) -> None:
    svc, base = service
    auth_base = base.replace("http://", "http://ann:s3cret@")
    started = []
    for name, url, props, event, checks in RULES:
        flow_sid = await api.create_flow(one_request(url=url.format(base=base, auth=auth_base), **props), name=name)
        started.append((name, flow_sid, (await api.start(flow_sid))["sid"], event, checks))
    for name, flow_sid, sid, event, checks in started:  # all run at once; the slow one takes ~10 s
        await api.wait_ended(flow_sid, sid, timeout=40)
        assert path(await api.steps(flow_sid, sid))[-1] == (event, "call", "Ended"), name
        call = (await context(api, flow_sid, sid))["widgets"]["call"]
        for key, value in checks.items():
            assert call.get(key) == value, (name, key, call)
        if event == "failed":
            assert call["error"], name
    assert svc.hits("/person") == [s for s in svc.seen if s["path"] == "/person" and s["query"] == {}]
    assert len(svc.hits("/person")) == 2  # the direct call and the redirect; never the add_twilio_auth one
    assert all(h["headers"]["Idempotency-Key"].startswith("RQ") for h in svc.seen)


async def test_add_twilio_auth_sends_the_accounts_credentials_to_the_configured_twilio_api(
        api: Any, settings: Any, messages_api: MessagesApi) -> None:
    contact = phone()
    url = f"{settings.twilio_api_base}/2010-04-01/Accounts/{settings.account_sid}/Messages.json"
    flow_sid = await api.create_flow(one_request(
        url=url, method="POST", add_twilio_auth=True,
        parameters=[{"key": "To", "value": "{{contact.channel.address}}"}, {"key": "From", "value": CHANNEL},
                    {"key": "Body", "value": "sent by hand"}]))
    created = await api.start(flow_sid, to=contact)
    await api.wait_ended(flow_sid, created["sid"])
    call = (await context(api, flow_sid, created["sid"]))["widgets"]["call"]
    (message,) = messages_api.messages(contact)
    assert call["status_code"] == 201 and call["parsed"]["sid"] == message["sid"]


async def test_run_function_posts_parameters_and_exposes_parsed_and_headers(
        api: Any, service: tuple[Service, str]) -> None:
    _, base = service
    flow_sid = await api.create_flow(definition("fn", w(
        "fn", "run-function", {"success": None, "fail": None}, url=f"{base}/fn",
        parameters=[{"key": "sign", "value": "{{flow.data.sign}}"}])))
    created = await api.start(flow_sid, params={"sign": "leo"})
    await api.wait_ended(flow_sid, created["sid"])
    fn = (await context(api, flow_sid, created["sid"]))["widgets"]["fn"]
    assert fn["parsed"] == {"echo": {"sign": "leo"}}
    assert fn["headers"] == {"x-twilio-function-concurrency": "1"}


# -- the examples of the Make HTTP Request page ---------------------------------------------------

COUNTER = "{% if flow.variables.count %}\n{{flow.variables.count | plus: 1}} {% else %} 1 {% endif %}"


async def test_the_retry_counter_loop_retries_up_to_three_times_then_sends_a_message(
        api: Any, service: tuple[Service, str], messages_api: MessagesApi) -> None:
    svc, base = service
    flow_sid = await api.create_flow(definition(
        "call_service",
        w("call_service", "make-http-request", {"success": None, "failed": "count"},
          url=f"{base}/flaky?m={{{{flow.sid}}}}", method="GET"),
        w("count", "set-variables", {"next": "check_count"}, variables=[{"key": "count", "value": COUNTER}]),
        split("check_count", "{{flow.variables.count}}", [("equal_to", "3", "tell_customer")], "call_service"),
        w("tell_customer", "send-message", {"sent": None, "failed": None},
          body="Sorry, we could not reach the service after {{flow.variables.count}} attempts."),
    ))
    contact = phone()
    created = await api.start(flow_sid, to=contact, from_=CHANNEL)
    await api.wait_ended(flow_sid, created["sid"])
    steps = path(await api.steps(flow_sid, created["sid"]))
    assert steps == [
        ("incomingRequest", "Trigger", "call_service"),
        *[("failed", "call_service", "count"), ("next", "count", "check_count"),
          ("noMatch", "check_count", "call_service")] * 2,
        ("failed", "call_service", "count"), ("next", "count", "check_count"),
        ("match", "check_count", "tell_customer"), ("sent", "tell_customer", "Ended"),
    ]
    assert len(svc.hits("/flaky", created["sid"])) == 3
    (message,) = messages_api.messages(contact)
    assert message["body"] == "Sorry, we could not reach the service after 3 attempts."
    assert (await context(api, flow_sid, created["sid"]))["flow"]["variables"]["count"] == 3


async def test_an_inbound_message_body_is_posted_to_a_webhook_as_json(
        api: Any, service: tuple[Service, str], sim: Simulator) -> None:
    svc, base = service
    flow_sid = await api.create_flow(definition(
        "post_to_hook",
        w("post_to_hook", "make-http-request", {"success": None, "failed": None}, method="POST",
          content_type="application/json;charset=utf-8", url=f"{base}/hook",
          body='{"text": "{{trigger.message.Body}}", "from": "{{trigger.message.From}}"}'),
        trigger="incomingMessage"))
    contact = phone()
    await sim.message(flow_sid, "Hello from my phone", from_=contact, to=CHANNEL)
    execution = await only_execution(api, flow_sid)
    (hit,) = svc.hits("/hook")
    assert hit["headers"]["Content-Type"].startswith("application/json")
    assert orjson.loads(hit["body"]) == {"text": "Hello from my phone", "from": contact}
    hook = (await context(api, flow_sid, execution["sid"]))["widgets"]["post_to_hook"]
    assert hook["parsed"] == {"received": {"text": "Hello from my phone", "from": contact}}


async def test_widgets_parsed_person_name_reads_the_json_response(
        api: Any, service: tuple[Service, str], messages_api: MessagesApi) -> None:
    _, base = service
    flow_sid = await api.create_flow(definition(
        "lookup",
        w("lookup", "make-http-request", {"success": "greet", "failed": None}, url=f"{base}/person"),
        w("greet", "send-message", {"sent": None, "failed": None},
          body="{{widgets.lookup.parsed.message}} {{widgets.lookup.parsed.person.name}}, "
               "age {{widgets.lookup.parsed.person.age}}"),
    ))
    contact = phone()
    created = await api.start(flow_sid, to=contact, from_=CHANNEL)
    await api.wait_ended(flow_sid, created["sid"])
    (message,) = messages_api.messages(contact)
    assert message["body"] == "Hi Bob, age 40"
