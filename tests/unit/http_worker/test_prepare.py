"""Building the wire request and following redirects: pure rules, no network."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from yarl import URL

from services.http_worker.prepare import (
    InvalidRequest,
    NotTwilioApi,
    Prepared,
    classify,
    is_twilio_api_url,
    prepare,
    redirect,
)
from shared.messages import HttpRequest
from shared.settings import Settings

SETTINGS = Settings(twilio_api_base="http://127.0.0.1:9999")


def request(url: str = "https://example.com/hook", **overrides: Any) -> HttpRequest:
    base = HttpRequest(
        request_id="RQ1", execution_sid="FN1", route="r", token="t", purpose="http", method="GET", url=url,
        content_type="application/x-www-form-urlencoded;charset=utf-8", body=None, form=[], query=[],
        twilio_auth=False, accept_3xx=False, created_at=0.0,
    )
    return replace(base, **overrides)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_get_carries_no_body_even_if_one_was_rendered() -> None:
    hop = prepare(request(body="ignored", form=[["a", "1"]], query=[["q", "1"]]), SETTINGS)
    assert (hop.method, hop.data, str(hop.url)) == ("GET", None, "https://example.com/hook?q=1")
    assert "Content-Type" not in hop.headers


def test_a_form_post_without_parameters_sends_its_body_as_typed() -> None:
    hop = prepare(request(method="POST", body="a=1&b=2"), SETTINGS)
    assert hop.data == b"a=1&b=2"
    assert hop.headers["Content-Type"] == "application/x-www-form-urlencoded;charset=utf-8"


def test_a_json_post_without_a_body_sends_an_empty_payload() -> None:
    hop = prepare(request(method="POST", content_type="application/json"), SETTINGS)
    assert hop.data == b"" and hop.headers["Content-Type"] == "application/json"


def test_the_method_is_case_insensitive() -> None:
    assert prepare(request(method="post"), SETTINGS).method == "POST"


def test_the_fragment_and_credentials_never_reach_the_wire() -> None:
    hop = prepare(request("https://u:p@example.com/x?y=1#frag"), SETTINGS)
    assert str(hop.url) == "https://example.com/x?y=1"
    assert hop.headers["Authorization"] == basic("u", "p")


def test_a_user_without_password_sends_an_empty_password() -> None:
    assert prepare(request("https://u@example.com/"), SETTINGS).headers["Authorization"] == basic("u", "")


def test_add_twilio_auth_accepts_the_configured_api_base() -> None:
    hop = prepare(request("http://127.0.0.1:9999/2010-04-01/Accounts/AC1/Messages.json", twilio_auth=True), SETTINGS)
    assert hop.headers["Authorization"] == basic(SETTINGS.account_sid, SETTINGS.auth_token)


def test_add_twilio_auth_refuses_another_port_of_the_api_base_host() -> None:
    with pytest.raises(NotTwilioApi):
        prepare(request("http://127.0.0.1:9998/", twilio_auth=True), SETTINGS)


@pytest.mark.parametrize(("url", "twilio"), [
    ("https://api.twilio.com/2010-04-01/Accounts", True),
    ("https://studio.twilio.com/v2/Flows", True),
    ("http://api.twilio.com/2010-04-01", False),
    ("https://twilio.com.evil.example/", False),
    ("https://eviltwilio.com/", False),
], ids=["the REST API", "another twilio.com API", "plain http to twilio.com", "a look-alike suffix", "a look-alike name"])
def test_what_counts_as_a_twilio_api_url(url: str, twilio: bool) -> None:
    assert is_twilio_api_url(URL(url), "https://api.twilio.com") is twilio


@pytest.mark.parametrize("url", ["http://a b.com/", "http://example.com/a\x01b", "javascript:alert(1)", "http://ex%41mple.com/",
                                 "mailto:someone@example.com", "//example.com/"],
                         ids=["whitespace", "a control character", "a javascript URL", "a percent-encoded host",
                              "a mailto URL", "a scheme-relative URL"])
def test_invalid_urls_are_rejected_before_anything_is_sent(url: str) -> None:
    with pytest.raises(InvalidRequest):
        prepare(request(url), SETTINGS)


def hop(url: str = "http://a.example/start", method: str = "POST", auth: bool = True) -> Prepared:
    headers = {"User-Agent": "x", "Idempotency-Key": "RQ1", "Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = basic("u", "p")
    return Prepared(method, URL(url), headers, b"{}")


def test_a_relative_location_resolves_against_the_current_hop() -> None:
    assert str(redirect(hop(), 307, "../next?x=1").url) == "http://a.example/next?x=1"


def test_the_idempotency_key_survives_every_redirect() -> None:
    assert redirect(hop(), 303, "/n").headers["Idempotency-Key"] == "RQ1"


def test_an_upgrade_to_https_on_the_same_host_keeps_credentials() -> None:
    assert "Authorization" in redirect(hop(), 302, "https://a.example/x").headers


@pytest.mark.parametrize("location", ["http://b.example/", "http://a.example:8080/", "https://a.example:8443/"],
                         ids=["another host", "another port", "https on another port"])
def test_leaving_the_origin_drops_credentials(location: str) -> None:
    assert "Authorization" not in redirect(hop(), 302, location).headers


def test_a_downgrade_to_http_drops_credentials() -> None:
    assert "Authorization" not in redirect(hop("https://a.example/"), 302, "http://a.example/").headers


def test_credentials_written_in_a_location_are_ignored() -> None:
    nxt = redirect(hop(auth=False), 302, "http://x:y@b.example/")
    assert str(nxt.url) == "http://b.example/" and "Authorization" not in nxt.headers


@pytest.mark.parametrize(("status", "accept_3xx", "expected"), [
    (200, False, (True, "2xx")), (204, False, (True, "2xx")), (299, False, (True, "2xx")),
    (301, False, (False, "3xx")), (302, True, (True, "3xx")), (404, True, (False, "4xx")), (503, False, (False, "5xx")),
], ids=["200 succeeds", "204 succeeds", "299 succeeds", "a 3xx fails Make HTTP Request", "a 3xx succeeds for Run Function",
        "a 4xx fails even for Run Function", "a 5xx fails"])
def test_classify(status: int, accept_3xx: bool, expected: tuple[bool, str]) -> None:
    assert classify(status, accept_3xx) == expected
