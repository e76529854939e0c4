"""Send Message and Send & Wait For Reply in the processor (the Messages API is played by results)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from shared.ids import derived_sid
from shared.messages import CancelTimer, ScheduleTimer
from shared.settings import Settings

from .harness import CHANNEL, CONTACT, Harness, flow_of

API = "http://127.0.0.1:9000"
SETTINGS = Settings(twilio_api_base=API)
MESSAGES_URL = f"{API}/2010-04-01/Accounts/{SETTINGS.account_sid}/Messages.json"


def message_resource(body: str = "Hi", status: str = "queued", **extra: Any) -> str:
    return orjson.dumps({"sid": "SM" + "b" * 32, "status": status, "body": body, "to": CONTACT, "from": CHANNEL,
                         "error_code": None, "error_message": None, "num_segments": "1",
                         "account_sid": SETTINGS.account_sid, "subresource_uris": {"media": "/x"}, **extra}).decode()


LEAF = {"type": "set-variables", "properties": {"variables": []}, "transitions": [{"event": "next"}]}


def send_flow(**props: Any) -> Any:
    return flow_of({"name": "say", "type": "send-message", "properties": {"body": "Hi {{flow.data.name}}", **props},
                    "transitions": [{"event": "sent", "next": "ok"}, {"event": "failed", "next": "ko"}]},
                   {"name": "ok", **LEAF}, {"name": "ko", **LEAF})


def ask_flow(**props: Any) -> Any:
    return flow_of({"name": "ask", "type": "send-and-wait-for-reply",
                    "properties": {"body": "Your name?", "timeout": "600", "from": "{{flow.channel.address}}", **props},
                    "transitions": [{"event": "incomingMessage", "next": "got"}, {"event": "timeout", "next": "late"},
                                    {"event": "deliveryFailure", "next": "bad"}]},
                   {"name": "got", **LEAF}, {"name": "late", **LEAF}, {"name": "bad", **LEAF})


# -- Send Message ----------------------------------------------------------------------------------

SEND_CASES = [
    ("the message goes to the contact from the flow's channel by default", {},
     [["To", CONTACT], ["From", CHANNEL], ["Body", "Hi Ann"]]),
    ("to and from are Liquid", {"to": "{{flow.data.to}}", "from": "+1 555 000"},
     [["To", "+15550009999"], ["From", "+1 555 000"], ["Body", "Hi Ann"]]),
    ("a Messaging Service sid sends as MessagingServiceSid", {"from": "MG" + "1" * 32},
     [["To", CONTACT], ["MessagingServiceSid", "MG" + "1" * 32], ["Body", "Hi Ann"]]),
    ("media_url becomes MediaUrl", {"media_url": "https://x/a.png"},
     [["To", CONTACT], ["From", CHANNEL], ["Body", "Hi Ann"], ["MediaUrl", "https://x/a.png"]]),
    ("a media-only message is sent", {"body": "", "media_url": "https://x/a.png"},
     [["To", CONTACT], ["From", CHANNEL], ["MediaUrl", "https://x/a.png"]]),
    ("a content template sends ContentSid and ContentVariables",
     {"message_type": "content_template", "content_sid": "HX" + "2" * 32,
      "content_variables": [{"key": "1", "value": "{{flow.data.name}}"}]},
     [["To", CONTACT], ["From", CHANNEL], ["ContentSid", "HX" + "2" * 32], ["ContentVariables", '{"1":"Ann"}']]),
    ("shorten_urls asks Twilio to shorten links", {"shorten_urls": True},
     [["To", CONTACT], ["From", CHANNEL], ["Body", "Hi Ann"], ["ShortenUrls", "true"]]),
]


@pytest.mark.parametrize("props,form", [pytest.param(p, f, id=i) for i, p, f in SEND_CASES])
def test_send_message_posts_to_the_messages_api(props: dict[str, Any], form: list[list[str]]) -> None:
    h = Harness(send_flow(**props), settings=SETTINGS)
    h.start({"name": "Ann", "to": "+15550009999"})
    (request,) = h.requests()
    assert (request.method, request.url, request.purpose, request.twilio_auth) == ("POST", MESSAGES_URL, "message", True)
    assert request.form == form
    assert request.request_id == derived_sid("RQ", request.execution_sid, request.token)


def test_send_message_takes_sent_with_outbound_in_studio_names() -> None:
    h = Harness(send_flow(), settings=SETTINGS)
    h.start({"name": "Ann"})
    h.result(h.requests()[0], 201, message_resource("Hi Ann"))
    assert h.path()[1] == ("sent", "say", "ok")
    outbound = h.context["widgets"]["say"]["outbound"]
    assert outbound["Sid"] == "SM" + "b" * 32 and outbound["Status"] == "queued" and outbound["Body"] == "Hi Ann"
    assert outbound["To"] == CONTACT and outbound["From"] == CHANNEL and outbound["ErrorCode"] is None
    assert outbound["NumSegments"] == "1" and outbound["AccountSid"] == SETTINGS.account_sid
    assert "SubresourceUris" not in outbound


FAILED_SEND_CASES = [
    ("Twilio refusing the message takes failed with its error",
     dict(status=400, body='{"code": 21211, "message": "Invalid To", "status": 400}', error="HTTP 400"),
     "Twilio error 21211: Invalid To (HTTP 400)"),
    ("no answer from the Messages API takes failed",
     dict(status=None, outcome="connection_error", error="ClientConnectorError"), "81011: ClientConnectorError"),
    ("a message resource that came back failed takes failed",
     dict(status=201, body=message_resource(status="failed")), "the message is failed"),
]


@pytest.mark.parametrize("result,error", [pytest.param(r, e, id=i) for i, r, e in FAILED_SEND_CASES])
def test_send_message_failures(result: dict[str, Any], error: str) -> None:
    h = Harness(send_flow(), settings=SETTINGS)
    h.start({"name": "Ann"})
    h.result(h.requests()[0], **result)
    assert h.path()[1] == ("failed", "say", "ko")
    assert h.context["widgets"]["say"]["error"] == error


@pytest.mark.parametrize("props,error", [
    pytest.param({"body": ""}, "81011: the message has no body", id="no body and no media takes failed unsent"),
    pytest.param({"to": "{{flow.data.nobody}}"}, "81011: the message has no recipient",
                 id="a recipient that renders empty takes failed unsent"),
    pytest.param({"body": "{% if %}"}, "81018: Liquid error", id="a Liquid error takes failed unsent"),
])
def test_a_message_that_cannot_be_sent_takes_failed_without_a_request(props: dict[str, Any], error: str) -> None:
    h = Harness(send_flow(**props), settings=SETTINGS)
    h.start({"name": "Ann"})
    assert h.requests() == []
    assert h.path()[1] == ("failed", "say", "ko")
    assert h.context["widgets"]["say"]["error"].startswith(error)


# -- Send & Wait For Reply -------------------------------------------------------------------------


def started(**props: Any) -> tuple[Harness, Any]:
    h = Harness(ask_flow(**props), settings=SETTINGS)
    out = h.start({"name": "Ann"})
    return h, out


def test_send_and_wait_sends_and_arms_a_timer_for_the_timeout() -> None:
    h, out = started()
    (request,) = h.requests()
    assert request.url == MESSAGES_URL and request.form == [["To", CONTACT], ["From", CHANNEL], ["Body", "Your name?"]]
    (timer,) = [c for c in out.commands if isinstance(c, ScheduleTimer) and c.token == request.token]
    assert timer.timer_id == derived_sid("TM", request.execution_sid, request.token)
    assert timer.due_at == h.now + 600
    wait = h.executions[request.execution_sid].wait
    assert wait is not None and (wait.kind, wait.timer_id) == ("message", timer.timer_id)


def test_send_and_wait_timeout_defaults_to_3600_seconds() -> None:
    h, out = started(timeout="")
    timers = [c for c in out.commands if isinstance(c, ScheduleTimer) and c.token != "expiry"]
    assert timers[0].due_at == h.now + 3600


def test_send_and_wait_keeps_waiting_after_the_send_and_a_reply_takes_incoming_message() -> None:
    h, _ = started()
    request = h.requests()[0]
    sent = h.result(request, 201, message_resource("Your name?"))
    assert [r for r in sent.records if r.kind == "step"] == []
    reply = h.message("Bob", MessageSid="SM" + "c" * 32)
    assert h.path()[1] == ("incomingMessage", "ask", "got")
    ask = h.context["widgets"]["ask"]
    assert ask["inbound"]["Body"] == "Bob" and ask["inbound"]["MessageSid"] == "SM" + "c" * 32
    assert ask["inbound"]["From"] == CONTACT
    assert ask["outbound"]["Sid"] == "SM" + "b" * 32 and ask["outbound"]["Body"] == "Your name?"
    assert CancelTimer(derived_sid("TM", request.execution_sid, request.token)) in reply.commands
    assert h.record().status == "ended"


def test_a_reply_that_arrives_before_the_send_result_is_taken_once_the_send_succeeded() -> None:
    h, _ = started()
    request = h.requests()[0]
    early = h.message("quick")
    assert [r for r in early.records if r.kind == "step"] == []
    h.result(request, 201, message_resource("Your name?"))
    assert h.path()[1] == ("incomingMessage", "ask", "got")
    assert h.context["widgets"]["ask"]["inbound"]["Body"] == "quick"
    assert h.context["widgets"]["ask"]["outbound"]["Status"] == "queued"


def test_the_timer_firing_first_takes_timeout() -> None:
    h, _ = started()
    request = h.requests()[0]
    h.result(request, 201, message_resource())
    h.fire(derived_sid("TM", request.execution_sid, request.token), request.execution_sid, request.token)
    assert h.path()[1] == ("timeout", "ask", "late")
    assert h.context["widgets"]["ask"]["outbound"]["Sid"] == "SM" + "b" * 32
    assert "inbound" not in h.context["widgets"]["ask"]


def test_a_reply_after_the_timeout_does_not_resume_the_old_wait() -> None:
    h, _ = started()
    request = h.requests()[0]
    h.result(request, 201, message_resource())
    h.fire(derived_sid("TM", request.execution_sid, request.token), request.execution_sid, request.token)
    h.message("too late", new_sid="FN" + "3" * 32)
    assert [p for p in h.path() if p[1] == "ask"] == [("timeout", "ask", "late")]


def test_a_send_the_messages_api_refuses_takes_delivery_failure_and_cancels_the_timer() -> None:
    h, _ = started()
    request = h.requests()[0]
    out = h.result(request, 400, '{"code": 21610, "message": "Attempt to send to unsubscribed recipient"}',
                   error="HTTP 400")
    assert h.path()[1] == ("deliveryFailure", "ask", "bad")
    assert h.context["widgets"]["ask"]["error"].startswith("Twilio error 21610")
    assert CancelTimer(derived_sid("TM", request.execution_sid, request.token)) in out.commands


def test_a_stale_timer_for_the_wait_is_ignored() -> None:
    h, _ = started()
    request = h.requests()[0]
    h.result(request, 201, message_resource())
    out = h.fire("TMother", request.execution_sid, request.token)
    assert out.records == [] and h.executions[request.execution_sid].wait is not None
