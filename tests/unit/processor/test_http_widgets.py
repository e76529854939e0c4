"""Make HTTP Request and Run Function in the processor: what is sent, and what each result does.

Transport rules (timeouts, size, redirects, SSRF) are the http-worker's and are
tested there; these tests pin the decisions the processor makes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from services.processor.widgets.http import is_twilio_api_url, valid_url
from shared.ids import derived_sid
from shared.settings import Settings

from .harness import Harness, flow_of

BOB = '{"message":"Hi","person":{"name":"Bob","age":40}}'


def http_flow(**props: Any) -> Any:
    leaf = {"type": "set-variables", "properties": {"variables": []}, "transitions": [{"event": "next"}]}
    return flow_of(
        {"name": "call", "type": "make-http-request", "properties": props,
         "transitions": [{"event": "success", "next": "ok"}, {"event": "failed", "next": "ko"}]},
        {"name": "ok", **leaf}, {"name": "ko", **leaf})


def function_flow(**props: Any) -> Any:
    """A Run Function that loops back to itself once through a counter, to test re-runs."""
    count = "{% if flow.variables.n %}{{flow.variables.n | plus: 1}}{% else %}1{% endif %}"
    return flow_of(
        {"name": "fn", "type": "run-function", "properties": props,
         "transitions": [{"event": "success", "next": "count"}, {"event": "fail", "next": "count"}]},
        {"name": "count", "type": "set-variables", "properties": {"variables": [{"key": "n", "value": count}]},
         "transitions": [{"event": "next", "next": "again"}]},
        {"name": "again", "type": "split-based-on", "properties": {"input": "{{flow.variables.n}}"},
         "transitions": [{"event": "noMatch"},
                         {"event": "match", "next": "fn", "conditions": [
                             {"friendly_name": "once", "arguments": [], "type": "equal_to", "value": "1"}]}]})


# -- what is sent ---------------------------------------------------------------------------------

REQUEST_CASES = [
    ("GET sends parameters in the query string and no body",
     {"method": "GET", "url": "http://svc/x", "body": "ignored", "parameters": [{"key": "q", "value": "{{flow.data.v}}"}]},
     {"method": "GET", "query": [["q", "V"]], "form": [], "body": None}),
    ("the method defaults to GET",
     {"url": "http://svc/x"}, {"method": "GET", "query": [], "form": [], "body": None}),
    ("POST form sends parameters form-encoded",
     {"method": "POST", "url": "http://svc/x", "content_type": "application/x-www-form-urlencoded;charset=utf-8",
      "parameters": [{"key": "a", "value": "1"}, {"key": "{{flow.data.k}}", "value": "b"}]},
     {"method": "POST", "form": [["a", "1"], ["K", "b"]], "query": [], "body": None,
      "content_type": "application/x-www-form-urlencoded;charset=utf-8"}),
    ("POST form without parameters sends the rendered body as is",
     {"method": "POST", "url": "http://svc/x", "body": "v={{flow.data.v}}"},
     {"method": "POST", "form": [], "body": "v=V"}),
    ("POST JSON sends the rendered body as the JSON payload",
     {"method": "POST", "url": "http://svc/x", "content_type": "application/json;charset=utf-8",
      "body": '{"text": "{{flow.data.v}}"}'},
     {"method": "POST", "body": '{"text": "V"}', "content_type": "application/json;charset=utf-8", "form": []}),
    ("POST JSON sends parameters in the query string",
     {"method": "POST", "url": "http://svc/x", "content_type": "application/json", "body": "{}",
      "parameters": [{"key": "p", "value": "1"}]},
     {"query": [["p", "1"]], "form": [], "body": "{}"}),
    ("the URL is Liquid",
     {"url": "{{flow.data.base}}/people/{{flow.data.v}}"}, {"url": "http://svc/people/V"}),
    ("the method is Liquid and case-insensitive",
     {"method": "{{flow.data.m}}", "url": "http://svc/x"}, {"method": "POST"}),
    ("credentials in the URL are passed on for basic auth",
     {"url": "http://user:pa%40ss@svc/x"}, {"url": "http://user:pa%40ss@svc/x", "twilio_auth": False}),
    ("add_twilio_auth asks for the account's credentials on a Twilio API URL",
     {"url": "https://api.twilio.com/2010-04-01/Accounts.json", "add_twilio_auth": True}, {"twilio_auth": True}),
    ("an HTTP request never accepts 3xx as success",
     {"url": "http://svc/x"}, {"accept_3xx": False, "purpose": "http"}),
]


@pytest.mark.parametrize("props,expected", [pytest.param(p, e, id=i) for i, p, e in REQUEST_CASES])
def test_the_rendered_request(props: dict[str, Any], expected: dict[str, Any]) -> None:
    h = Harness(http_flow(**props))
    h.start({"v": "V", "k": "K", "m": "post", "base": "http://svc"})
    (request,) = h.requests()
    for name, value in expected.items():
        assert getattr(request, name) == value, name


def test_the_request_id_is_the_same_idempotency_key_on_every_replay() -> None:
    first, second = Harness(http_flow(url="http://svc/x")), Harness(http_flow(url="http://svc/x"))
    first.start()
    second.start()
    (a,), (b,) = first.requests(), second.requests()
    assert a.request_id == b.request_id == derived_sid("RQ", a.execution_sid, a.token)
    assert a.request_id.startswith("RQ")


NOT_SENT_CASES = [
    ("an empty URL takes failed without a request", {"url": ""}, "is not a valid URL"),
    ("a URL that renders empty takes failed without a request", {"url": "{{flow.data.nope}}"}, "is not a valid URL"),
    ("a relative URL takes failed without a request", {"url": "/people"}, "is not a valid URL"),
    ("a non-http scheme takes failed without a request", {"url": "ftp://svc/x"}, "is not a valid URL"),
    ("a URL with spaces takes failed without a request", {"url": "http://svc/a b"}, "is not a valid URL"),
    ("a placeholder URL takes failed without a request", {"url": "<<INSERT YOUR URL>>"}, "is not a valid URL"),
    ("a malformed port takes failed without a request", {"url": "http://svc:99999/x"}, "is not a valid URL"),
    ("a parameter named method takes failed without a request",
     {"url": "http://svc/x", "parameters": [{"key": "Method", "value": "x"}]}, "81014: the HTTP parameter name 'Method'"),
    ("a method other than GET or POST takes failed without a request",
     {"url": "http://svc/x", "method": "PUT"}, "unsupported method 'PUT'"),
    ("add_twilio_auth to a non-Twilio host takes failed without sending",
     {"url": "https://example.com/x", "add_twilio_auth": True}, "not a Twilio API URL"),
    ("add_twilio_auth to a host merely ending in twilio.com takes failed without sending",
     {"url": "https://eviltwilio.com/x", "add_twilio_auth": "true"}, "not a Twilio API URL"),
    ("a Liquid error takes failed with 81018", {"url": "http://svc/{{ 1 | divided_by: 0 }}"}, "81018: Liquid error"),
]


@pytest.mark.parametrize("props,reason", [pytest.param(p, r, id=i) for i, p, r in NOT_SENT_CASES])
def test_a_request_that_cannot_be_made_takes_failed_without_sending(props: dict[str, Any], reason: str) -> None:
    h = Harness(http_flow(**props))
    h.start()
    assert h.requests() == []
    assert h.path()[1] == ("failed", "call", "ko")
    assert reason in h.context["widgets"]["call"]["error"]
    assert "status_code" not in h.context["widgets"]["call"]


@pytest.mark.parametrize("url,base,expected", [
    ("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json", "https://api.twilio.com", True),
    ("https://studio.twilio.com/v2/Flows", "https://api.twilio.com", True),
    ("http://api.twilio.com/x", "https://api.twilio.com", False),
    ("https://foo.twil.io/fn", "https://api.twilio.com", False),
    ("http://127.0.0.1:9000/2010-04-01/x", "http://127.0.0.1:9000", True),
    ("http://127.0.0.1:9001/x", "http://127.0.0.1:9000", False),
])
def test_what_counts_as_a_twilio_api_url(url: str, base: str, expected: bool) -> None:
    assert is_twilio_api_url(url, base) is expected


def test_the_configured_twilio_api_base_counts_as_a_twilio_api() -> None:
    h = Harness(http_flow(url="http://127.0.0.1:9000/2010-04-01/Accounts.json", add_twilio_auth=True),
                settings=Settings(twilio_api_base="http://127.0.0.1:9000"))
    h.start()
    assert h.requests()[0].twilio_auth is True


@pytest.mark.parametrize("url,ok", [("http://a.b/c?d=e#f", True), ("HTTPS://A.B", True), ("http:///x", False),
                                    ("mailto:x@y", False), (" http://a.b", False)])
def test_valid_url(url: str, ok: bool) -> None:
    assert valid_url(url) is ok


# -- what results do ------------------------------------------------------------------------------

RESULT_CASES = [
    ("a 2xx JSON object takes success and is parsed",
     dict(status=200, body=BOB), "success",
     {"status_code": 200, "content_type": "application/json", "body": BOB,
      "parsed": {"message": "Hi", "person": {"name": "Bob", "age": 40}}}),
    ("a 204 without a body takes success",
     dict(status=204, body="", content_type=""), "success", {"status_code": 204, "content_type": "", "body": ""}),
    ("a top-level JSON array is not parsed",
     dict(status=200, body='[{"a":1}]'), "success",
     {"status_code": 200, "content_type": "application/json", "body": '[{"a":1}]'}),
    ("a text body is not parsed",
     dict(status=200, body="hello", content_type="text/plain"), "success",
     {"status_code": 200, "content_type": "text/plain", "body": "hello"}),
    ("a JSON scalar is not parsed",
     dict(status=200, body='"x"'), "success", {"status_code": 200, "content_type": "application/json", "body": '"x"'}),
    ("a 4xx takes failed and keeps the response",
     dict(status=404, body='{"error":"nope"}', error="HTTP 404"), "failed",
     {"status_code": 404, "content_type": "application/json", "body": '{"error":"nope"}',
      "parsed": {"error": "nope"}, "error": "HTTP 404"}),
    ("a 5xx takes failed",
     dict(status=503, body="down", content_type="text/plain", error="HTTP 503"), "failed",
     {"status_code": 503, "content_type": "text/plain", "body": "down", "error": "HTTP 503"}),
    ("a timeout takes failed without response variables",
     dict(status=None, outcome="timeout", error="no response within 10 s"), "failed",
     {"error": "no response within 10 s"}),
    ("a refused destination takes failed with the reason",
     dict(status=None, outcome="refused", error="127.0.0.1 is a loopback address"), "failed",
     {"error": "127.0.0.1 is a loopback address"}),
    ("a body over 64 kB takes failed",
     dict(status=200, body="", ok=False, outcome="too_large", error="response body exceeds 65536 bytes"), "failed",
     {"status_code": 200, "content_type": "application/json", "body": "",
      "error": "response body exceeds 65536 bytes"}),
]


@pytest.mark.parametrize("result,event,variables", [pytest.param(r, e, v, id=i) for i, r, e, v in RESULT_CASES])
def test_an_http_result(result: dict[str, Any], event: str, variables: dict[str, Any]) -> None:
    h = Harness(http_flow(url="http://svc/x"))
    h.start()
    (request,) = h.requests()
    h.result(request, **result)
    assert h.path()[1] == (event, "call", "ok" if event == "success" else "ko")
    assert h.context["widgets"]["call"] == variables


def test_a_result_for_another_wait_is_ignored() -> None:
    h = Harness(http_flow(url="http://svc/x"))
    h.start()
    (request,) = h.requests()
    stale = h.result(dataclasses.replace(request, token="99", request_id="RQother"))
    assert stale.records == [] and stale.commands == []
    assert h.executions[request.execution_sid].wait is not None


def test_run_function_posts_its_parameters_form_encoded_and_accepts_3xx() -> None:
    h = Harness(function_flow(url="https://fn.twil.io/x", parameters=[{"key": "sign", "value": "{{flow.data.v}}"}]))
    h.start({"v": "leo"})
    (request,) = h.requests()
    assert (request.method, request.form, request.accept_3xx, request.purpose) == (
        "POST", [["sign", "leo"]], True, "function")


def test_run_function_success_exposes_headers_and_fail_is_named_fail() -> None:
    h = Harness(function_flow(url="https://fn.twil.io/x"))
    h.start()
    h.result(h.requests()[0], 200, '{"a":1}', headers={"x-twilio-function-concurrency": "3"})
    assert h.context["widgets"]["fn"]["headers"] == {"x-twilio-function-concurrency": "3"}
    h.result(h.requests()[0], 500, "boom", content_type="text/plain", error="HTTP 500")
    assert [s.name for s in h.steps() if s.transitioned_from == "fn"] == ["success", "fail"]


def test_run_function_merges_parsed_into_the_previous_run() -> None:
    h = Harness(function_flow(url="https://fn.twil.io/x"))
    h.start()
    h.result(h.requests()[0], 200, '{"a":1,"b":{"x":1}}')
    h.result(h.requests()[0], 200, '{"b":{"y":2},"c":3}')
    fn = h.context["widgets"]["fn"]
    assert fn["parsed"] == {"a": 1, "b": {"y": 2}, "c": 3}
    assert fn["body"] == '{"b":{"y":2},"c":3}'


def test_run_function_without_a_json_object_leaves_the_previous_parsed_untouched() -> None:
    h = Harness(function_flow(url="https://fn.twil.io/x"))
    h.start()
    h.result(h.requests()[0], 200, '{"a":1}')
    h.result(h.requests()[0], 200, "plain text", content_type="text/plain")
    fn = h.context["widgets"]["fn"]
    assert fn["parsed"] == {"a": 1}
    assert (fn["body"], fn["content_type"]) == ("plain text", "text/plain")


def test_run_function_with_an_invalid_url_takes_fail_without_a_request() -> None:
    h = Harness(function_flow(url=""))
    h.start()
    assert h.requests() == []
    assert h.path()[1] == ("fail", "fn", "count")


def test_a_result_with_the_wait_token_but_another_request_id_is_ignored() -> None:
    h = Harness(http_flow(url="http://svc/x"))
    h.start()
    (request,) = h.requests()
    stray = h.result(dataclasses.replace(request, request_id="RQother"))
    assert stray.records == [] and stray.commands == []
