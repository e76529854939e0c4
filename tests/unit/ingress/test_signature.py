"""X-Twilio-Signature is checked against the URL Twilio called: the configured public base URL plus the raw path."""

from __future__ import annotations

import pytest
from multidict import MultiDict
from twilio.request_validator import RequestValidator

from services.ingress.webhook import signature_is_valid

TOKEN = "12345678901234567890123456789012"
PUBLIC = "https://switchboard.example.com"
PATH = "/v1/Accounts/AC00000000000000000000000000000000/Flows/FW00000000000000000000000000000000"
FORM = MultiDict({"CallSid": "CA1", "From": "+15550001111", "To": "+15550002222", "CallStatus": "ringing"})


def _sign(url: str, form: MultiDict[str], token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, dict(form)))


@pytest.mark.parametrize(("case", "signed_url", "raw_path", "form", "token", "valid"), [
    ("behind a proxy: signed over the public URL, received on an internal address",
     PUBLIC + PATH, PATH, FORM, TOKEN, True),
    ("the query string is part of what is signed", PUBLIC + PATH + "?FlowEvent=return&foo=bar",
     PATH + "?FlowEvent=return&foo=bar", FORM, TOKEN, True),
    ("signed over the internal address the proxy forwarded to", "http://10.0.0.5:8080" + PATH, PATH, FORM,
     TOKEN, False),
    ("a query parameter added after signing", PUBLIC + PATH + "?FlowEvent=return",
     PATH + "?FlowEvent=return&foo=bar", FORM, TOKEN, False),
    ("signed with another account's auth token", PUBLIC + PATH, PATH, FORM, "0" * 32, False),
])
def test_signature_rule(case: str, signed_url: str, raw_path: str, form: MultiDict[str], token: str,
                        valid: bool) -> None:
    signature = _sign(signed_url, form, token)
    assert signature_is_valid(TOKEN, PUBLIC + "/", raw_path, form, signature) is valid, case


def test_a_changed_form_field_invalidates_the_signature() -> None:
    signature = _sign(PUBLIC + PATH, FORM)
    tampered = MultiDict(FORM)
    tampered["From"] = "+15559999999"
    assert signature_is_valid(TOKEN, PUBLIC, PATH, tampered, signature) is False


def test_a_missing_signature_is_invalid() -> None:
    assert signature_is_valid(TOKEN, PUBLIC, PATH, FORM, "") is False
