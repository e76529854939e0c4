"""The keep-alive TwiML a slow engine answers a call with: a bounded number of redirects back to the webhook."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse
from xml.etree import ElementTree

import pytest

from services.ingress.webhook import MAX_KEEPALIVES, keepalive_twiml

WEBHOOK = "https://sb.example.com/v1/Accounts/AC1/Flows/FW1"


@pytest.mark.parametrize("attempt", range(1, MAX_KEEPALIVES + 1))
def test_each_keepalive_up_to_the_cap_redirects_back_with_its_attempt_number(attempt: int) -> None:
    root = ElementTree.fromstring(keepalive_twiml(WEBHOOK, attempt))
    [redirect] = list(root)
    assert redirect.tag == "Redirect" and redirect.get("method") == "POST"
    url = urlparse(redirect.text or "")
    assert f"{url.scheme}://{url.netloc}{url.path}" == WEBHOOK
    assert parse_qs(url.query) == {"FlowEvent": ["keepalive"], "KeepAlive": [str(attempt)]}


def test_past_the_cap_the_answer_is_an_empty_response_so_twilio_ends_the_call() -> None:
    root = ElementTree.fromstring(keepalive_twiml(WEBHOOK, MAX_KEEPALIVES + 1))
    assert root.tag == "Response" and list(root) == []


def test_the_cap_is_eight_redirects() -> None:
    assert MAX_KEEPALIVES == 8  # 8 x the 8 s budget: about a minute of hold before giving up (README)
