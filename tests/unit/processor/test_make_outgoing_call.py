"""Make Outgoing Call (``make-outgoing-call-v2``): the Calls API request, and how the callee's requests resume the flow.

The execution starts over REST; these tests play the Calls API's answer (an
``HttpResult``) and Twilio's requests for the call as the ingress publishes
them: the query of the ``Url``/``StatusCallback`` the widget sent, merged with
Twilio's form parameters, ``FlowEvent`` taken out.
"""

from __future__ import annotations

import itertools
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson
import pytest

from services.processor.widgets.outbound_call import EXECUTION_PARAM, WAIT_PARAM
from shared.ids import derived_sid
from shared.messages import HttpRequest, Reply, StartExecution, WebhookReceived
from shared.settings import Settings

from .harness import CHANNEL, CONTACT, FLOW_SID, NOW, ROUTE, Harness, flow_of
from .voice_helpers import EMPTY, XML, Store, call_event, flow, replies, steps, twiml, widget

API = "http://127.0.0.1:9000"
PUBLIC = "https://sb.example.com"
SETTINGS = Settings(twilio_api_base=API, public_base_url=PUBLIC)
ACCOUNT = SETTINGS.account_sid
CALLS_URL = f"{API}/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
WEBHOOK = f"{PUBLIC}/v1/Accounts/{ACCOUNT}/Flows/{FLOW_SID}"
CALL_SID = "CA" + "c" * 32
EXECUTION = "FN" + "1" * 32
_ids = itertools.count(1)

#: The properties of the conformance autodialer (flow 31): recording off, answering machine detection on.
AUTODIALER = {
    "machine_detection_speech_threshold": "2400", "detect_answering_machine": True, "recording_channels": "mono",
    "timeout": 20, "machine_detection": "Enable", "trim": "do-not-trim", "record": False,
    "machine_detection_speech_end_threshold": "1200", "machine_detection_timeout": "30",
    "from": "{{flow.channel.address}}", "to": "{{contact.channel.address}}", "machine_detection_silence_timeout": "5000",
}
LEAF = {"type": "set-variables", "properties": {"variables": []}, "transitions": [{"event": "next"}]}


def call_flow(**props: Any) -> Any:
    """call → answered: hello (say-play) | busy, noAnswer: sorry (send-message) | failed: oops."""
    return flow_of(
        {"name": "call", "type": "make-outgoing-call-v2", "properties": props,
         "transitions": [{"event": "answered", "next": "hello"}, {"event": "busy", "next": "sorry"},
                         {"event": "noAnswer", "next": "sorry"}, {"event": "failed", "next": "oops"}]},
        {"name": "hello", "type": "say-play", "properties": {"say": "Hello {{widgets.call.AnsweredBy}}"},
         "transitions": [{"event": "audioComplete", "next": "bye"}]},
        {"name": "bye", "type": "say-play", "properties": {"say": "Bye"}, "transitions": [{"event": "audioComplete"}]},
        {"name": "sorry", "type": "send-message", "properties": {"body": "We missed you ({{widgets.call.CallStatus}})"},
         "transitions": [{"event": "sent"}, {"event": "failed"}]},
        {"name": "oops", **LEAF})


def call_resource(sid: str = CALL_SID) -> str:
    return orjson.dumps({"sid": sid, "status": "queued", "direction": "outbound-api", "to": CONTACT, "from": CHANNEL,
                         "account_sid": ACCOUNT, "subresource_uris": {"recordings": "/x"}}).decode()


def placing(**props: Any) -> tuple[Harness, HttpRequest]:
    """A REST execution parked on the widget, and the Calls API request it made."""
    h = Harness(call_flow(**({"to": "{{contact.channel.address}}", "from": "{{flow.channel.address}}"} | props)),
                settings=SETTINGS)
    h.start({"reason": "your order"})
    (request,) = h.requests()
    return h, request


def form(request: HttpRequest) -> dict[str, str]:
    return dict(request.form)


def twilio(h: Harness, url: str, status: str = "in-progress", call_sid: str = CALL_SID, reply: str | None = None,
           **params: str) -> WebhookReceived:
    """Twilio's request to ``url`` for the outbound call, as the ingress publishes it."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == WEBHOOK
    fields = {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "CallSid": call_sid, "CallStatus": status,
              "Direction": "outbound-api", "From": CHANNEL, "To": CONTACT, "Called": CONTACT, "Caller": CHANNEL}
    merged = dict(parse_qsl(parts.query)) | fields | params
    flow_event = merged.pop("FlowEvent", "")
    n = next(_ids)
    return WebhookReceived(flow_sid=FLOW_SID, revision=1, route=ROUTE, channel="voice", params=merged,
                           flow_event=flow_event, call_sid=call_sid, new_execution_sid=f"FN{n:032x}",
                           received_at=NOW, reply_id=reply or f"w{n}", reply_partition=3)


def answered(h: Harness, request: HttpRequest, **params: str) -> Any:
    return h.send(twilio(h, form(request)["Url"], reply="answered", **params))


def status_callback(h: Harness, request: HttpRequest, status: str, **params: str) -> Any:
    return h.send(twilio(h, form(request)["StatusCallback"], status, **({"CallDuration": "0"} | params)))


def the_reply(outcome: Any) -> Reply:
    found = [c for c in outcome.commands if isinstance(c, Reply)]
    assert len(found) == 1, found
    return found[0]


# -- the Calls API request -----------------------------------------------------------------------------

URL = f"{WEBHOOK}?FlowEvent=answered&{EXECUTION_PARAM}={EXECUTION}&{WAIT_PARAM}=1"
STATUS_CALLBACK = f"{WEBHOOK}?{EXECUTION_PARAM}={EXECUTION}&{WAIT_PARAM}=1"
BASE_FIELDS = [["To", CONTACT], ["From", CHANNEL], ["Url", URL], ["Method", "POST"],
               ["StatusCallback", STATUS_CALLBACK], ["StatusCallbackMethod", "POST"]]
REQUEST_CASES = [
    ("the autodialer: machine detection on, the hidden recording options left out", AUTODIALER,
     [*BASE_FIELDS, ["Timeout", "20"], ["MachineDetection", "Enable"], ["MachineDetectionTimeout", "30"],
      ["MachineDetectionSpeechThreshold", "2400"], ["MachineDetectionSpeechEndThreshold", "1200"],
      ["MachineDetectionSilenceTimeout", "5000"]]),
    ("recording on with its options; machine detection off leaves its hidden options out",
     {"record": True, "recording_channels": "dual", "recording_status_callback": "https://rec.example.com/{{flow.sid}}",
      "trim": "true", "detect_answering_machine": False, "machine_detection": "DetectMessageEnd",
      "send_digits": "1234#", "sip_auth_username": "alice", "sip_auth_password": "s3cret", "timeout": "45"},
     [*BASE_FIELDS, ["Timeout", "45"], ["SendDigits", "1234#"], ["SipAuthUsername", "alice"],
      ["SipAuthPassword", "s3cret"], ["Record", "true"], ["RecordingChannels", "dual"],
      ["RecordingStatusCallback", f"https://rec.example.com/{EXECUTION}"], ["Trim", "trim-silence"]]),
    ("machine detection on without a mode is Enable; empty optional properties are not sent",
     {"detect_answering_machine": "true", "machine_detection": "", "send_digits": "", "sip_auth_username": "",
      "recording_status_callback": "", "record": "false"},
     [*BASE_FIELDS, ["MachineDetection", "Enable"]]),
    ("only to and from: Twilio's defaults", {}, BASE_FIELDS),
]


@pytest.mark.parametrize("props,fields", [pytest.param(p, f, id=i) for i, p, f in REQUEST_CASES])
def test_make_outgoing_call_posts_to_the_calls_api_with_the_account_credentials(props: dict[str, Any],
                                                                              fields: list[list[str]]) -> None:
    _, request = placing(**props)
    assert (request.method, request.url, request.purpose, request.twilio_auth, request.accept_3xx) == (
        "POST", CALLS_URL, "call", True, False)
    assert request.content_type.startswith("application/x-www-form-urlencoded")
    assert request.form == fields and request.query == [] and request.body is None
    assert request.request_id == derived_sid("RQ", EXECUTION, request.token)


def test_the_rest_create_is_answered_at_once_while_the_execution_waits_for_the_call() -> None:
    h, _ = placing()
    reply = the_reply(h.last)
    assert (reply.reply_id, reply.status, reply.execution["status"]) == ("r1", "ok", "active")
    assert h.path() == [("incomingRequest", "Trigger", "call")]
    assert h.executions[EXECUTION].wait.kind == "call"


# -- answered ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("api_answer_first", [True, False], ids=["api-answer-first", "callee-request-first"])
def test_answered_resumes_the_flow_and_its_twiml_answers_the_callees_request(api_answer_first: bool) -> None:
    h, request = placing(**AUTODIALER)
    if api_answer_first:
        assert h.result(request, 201, call_resource()).records[-1].status == "active"
    out = answered(h, request, AnsweredBy="human", MachineDetectionDuration="1800")
    assert the_reply(out).reply_id == "answered"
    assert the_reply(out).twiml == (f'{XML}<Response><Say loop="1">Hello human</Say><Redirect method="POST">'
                                    f'{WEBHOOK}?FlowEvent=audioComplete</Redirect></Response>')
    assert h.path()[1] == ("answered", "call", "hello")
    call = h.context["widgets"]["call"]
    assert (call["CallSid"], call["CallStatus"], call["Direction"], call["AnsweredBy"]) == (
        CALL_SID, "in-progress", "outbound-api", "human")
    assert call["To"] == CONTACT and call["From"] == CHANNEL and call["MachineDetectionDuration"] == "1800"
    assert EXECUTION_PARAM not in call and WAIT_PARAM not in call and "FlowEvent" not in call
    assert h.route.calls == {CALL_SID: EXECUTION}
    if not api_answer_first:  # the Calls API's answer arrives after the callee's request: ignored
        late = h.result(request, 201, call_resource())
        assert late.records == [] and late.commands == []


def test_the_answered_calls_later_requests_work_like_an_incoming_calls() -> None:
    h, request = placing()
    h.result(request, 201, call_resource())
    answered(h, request)
    # The Say's <Redirect> carries no routing parameters: the CallSid finds the execution.
    out = h.send(twilio(h, f"{WEBHOOK}?FlowEvent=audioComplete"))
    assert h.path()[-1] == ("audioComplete", "hello", "bye") and '<Say loop="1">Bye</Say>' in the_reply(out).twiml
    keepalive = h.send(twilio(h, f"{WEBHOOK}?FlowEvent=keepalive&KeepAlive=1"))
    assert '<Say loop="1">Bye</Say>' in the_reply(keepalive).twiml and keepalive.records == []
    over = status_callback(h, request, "completed", CallDuration="31")
    assert the_reply(over).twiml == EMPTY
    assert h.record().status == "ended" and h.record().end_reason == "call_ended"
    assert h.route.calls == {} and h.route.active == []


# -- busy, no answer, failed -----------------------------------------------------------------------------


@pytest.mark.parametrize("status,event", [("busy", "busy"), ("no-answer", "noAnswer"), ("failed", "failed"),
                                          ("canceled", "failed"), ("completed", "failed")])
def test_a_final_status_before_the_call_was_answered_takes_the_mapped_transition(status: str, event: str) -> None:
    h, request = placing()
    h.result(request, 201, call_resource())
    out = status_callback(h, request, status, SipResponseCode="486")
    assert the_reply(out).twiml == EMPTY and the_reply(out).reply_id.startswith("w")
    assert h.path()[1][:2] == (event, "call")
    call = h.context["widgets"]["call"]
    assert (call["CallSid"], call["CallStatus"], call["SipResponseCode"]) == (CALL_SID, status, "486")
    assert EXECUTION_PARAM not in call and WAIT_PARAM not in call
    if event != "failed":
        (message,) = h.requests()
        assert dict(message.form)["Body"] == f"We missed you ({status})"
    assert h.route.calls == {}


def test_a_status_callback_that_arrives_before_the_calls_api_answer_is_taken() -> None:
    h, request = placing()
    status_callback(h, request, "no-answer")
    assert h.path()[1] == ("noAnswer", "call", "sorry")
    late = h.result(request, 201, call_resource())
    assert late.records == [] and late.commands == []


FAILED_CASES = [
    ("an invalid number", dict(status=400, body='{"code": 21217, "message": "Phone number is not a valid phone '
                                                 'number", "status": 400}', error="HTTP 400"),
     "Twilio error 21217: Phone number is not a valid phone number (HTTP 400)"),
    ("a 5xx without Twilio's error body", dict(status=503, body="down", content_type="text/plain", error="HTTP 503"),
     "81008: the Calls API answered HTTP 503"),
    ("no answer within the http-worker's timeout",
     dict(status=None, outcome="timeout", error="no complete response within 10 s"),
     "81008: no complete response within 10 s"),
]


@pytest.mark.parametrize("result,error", [pytest.param(r, e, id=i) for i, r, e in FAILED_CASES])
def test_a_refused_or_unanswered_calls_api_request_takes_failed(result: dict[str, Any], error: str) -> None:
    h, request = placing()
    h.result(request, **result)
    assert h.path()[1:] == [("failed", "call", "oops"), ("next", "oops", "Ended")]
    assert h.context["widgets"]["call"] == {"error": error}
    assert h.record().status == "ended" and "error" not in h.context


UNPLACEABLE = [
    ("to is not the contact", {"to": "+15550007777"}, "'to' rendered '+15550007777'"),
    ("from is a Messaging Service", {"from": "MG" + "1" * 32}, "is a Messaging Service"),
    ("from renders empty", {"from": "{{flow.data.nobody}}"}, "no caller ID"),
    ("a Liquid error", {"send_digits": "{{ 1 | divided_by: 0 }}"}, "81018: "),
]


@pytest.mark.parametrize("props,error", [pytest.param(p, e, id=i) for i, p, e in UNPLACEABLE])
def test_a_call_that_cannot_be_placed_takes_failed_without_a_request(props: dict[str, Any], error: str) -> None:
    h = Harness(call_flow(**props), settings=SETTINGS)
    h.start()
    assert h.requests() == []
    assert h.path()[1] == ("failed", "call", "oops")
    assert error in h.context["widgets"]["call"]["error"]


# -- late, repeated, stale --------------------------------------------------------------------------------


def test_a_repeated_status_callback_after_the_flow_moved_on_changes_nothing() -> None:
    h, request = placing()
    h.result(request, 201, call_resource())
    status_callback(h, request, "busy")
    waiting = h.executions[EXECUTION].to_dict()
    again = status_callback(h, request, "busy")
    assert again.records == [] and [type(c) for c in again.commands] == [Reply]
    assert the_reply(again).twiml == EMPTY
    assert h.executions[EXECUTION].to_dict() == waiting  # still sending "We missed you"


def test_a_request_for_an_earlier_call_of_the_execution_is_ignored_and_that_call_hung_up() -> None:
    """busy → retry: the first call's late requests name a wait the execution has left."""
    definition = flow_of(
        {"name": "call", "type": "make-outgoing-call-v2", "properties": {},
         "transitions": [{"event": "answered", "next": "hello"}, {"event": "busy", "next": "retry"}]},
        {"name": "retry", "type": "set-variables", "properties": {"variables": [{"key": "tries", "value": "2"}]},
         "transitions": [{"event": "next", "next": "call"}]},
        {"name": "hello", "type": "say-play", "properties": {"say": "Hi"}, "transitions": [{"event": "audioComplete"}]})
    h = Harness(definition, settings=SETTINGS)
    h.start()
    (first,) = h.requests()
    h.result(first, 201, call_resource())
    status_callback(h, first, "busy")
    (second,) = h.requests()
    assert form(second)["Url"] != form(first)["Url"]  # another wait token
    before = h.executions[EXECUTION].to_dict()
    late_answer = answered(h, first)  # the first call, answered after all (it was busy for the flow)
    late_status = status_callback(h, first, "busy")
    for out in (late_answer, late_status):
        assert out.records == [] and the_reply(out).twiml == EMPTY
    assert h.executions[EXECUTION].to_dict() == before
    second_sid = "CA" + "d" * 32
    h.result(second, 201, call_resource(second_sid))
    out = h.send(twilio(h, form(second)["Url"], call_sid=second_sid))
    assert h.path()[-1] == ("answered", "call", "hello") and '<Say loop="1">Hi</Say>' in the_reply(out).twiml


def test_a_callee_request_with_another_call_sid_than_the_calls_api_returned_is_ignored() -> None:
    h, request = placing()
    h.result(request, 201, call_resource())
    out = h.send(twilio(h, form(request)["Url"], call_sid="CA" + "e" * 32))
    assert out.records == [] and the_reply(out).twiml == EMPTY
    assert h.executions[EXECUTION].wait.kind == "call"


def test_an_intermediate_status_callback_changes_nothing() -> None:
    h, request = placing()
    out = status_callback(h, request, "ringing")
    assert out.records == [] and the_reply(out).twiml == EMPTY
    assert h.executions[EXECUTION].wait.kind == "call"


def test_requests_for_an_execution_that_ended_start_nothing() -> None:
    h, request = placing()
    h.result(request, 201, call_resource())
    status_callback(h, request, "failed")
    assert h.record().status == "ended"
    for out in (answered(h, request), status_callback(h, request, "completed")):
        assert the_reply(out).twiml == EMPTY and out.records == [] and out.executions == {}
    assert h.route.active == []


def test_a_crash_replay_resends_the_calls_api_request_only_until_twilio_answered_it() -> None:
    h = Harness(call_flow(), settings=SETTINGS)
    start = h.start(offset=0)
    (request,) = h.requests(start)
    replay = h.send(_start_event(), offset=0)
    assert h.requests(replay) == [request]  # lost before it reached Kafka: sent again, same id
    h.result(request, 201, call_resource(), offset=1)
    assert h.requests(h.send(_start_event(), offset=0)) == []  # queued already: never repeated
    out = h.send(twilio(h, form(request)["Url"]), offset=2)
    replayed = h.send(twilio(h, form(request)["Url"]), offset=2)
    assert replayed.replayed and steps(replayed) == steps(out) == [("answered", "call", "hello")]


def _start_event() -> StartExecution:
    return StartExecution(execution_sid=EXECUTION, flow_sid=FLOW_SID, revision=1, route=ROUTE, contact_address=CONTACT,
                          channel_address=CHANNEL, flow_data={}, created_at=NOW, reply_id="r1", reply_partition=0)


# -- executions that did not start over REST ------------------------------------------------------------


def test_a_message_started_execution_calls_the_sender_and_the_message_webhook_is_answered_at_once() -> None:
    h = Harness(call_flow(), settings=SETTINGS)
    out = h.message("call me")
    (request,) = h.requests()
    assert form(request)["To"] == CONTACT and form(request)["From"] == CHANNEL
    assert the_reply(out).reply_id == "w1" and the_reply(out).twiml == EMPTY
    sid = request.execution_sid
    h.result(request, 201, call_resource())
    reply = the_reply(h.send(twilio(h, form(request)["Url"])))
    assert "Hello" in reply.twiml and h.route.calls == {CALL_SID: sid}


def test_an_incoming_calls_execution_takes_failed_without_placing_a_second_call() -> None:
    store = Store(flow(widget("call", "make-outgoing-call-v2", {"answered": "hi", "failed": "ko"},
                              to="{{contact.channel.address}}", **{"from": "{{flow.channel.address}}"}),
                       widget("hi", "say-play", {"audioComplete": None}, say="Hi"),
                       widget("ko", "say-play", {"audioComplete": None}, say="{{widgets.call.error}}"),
                       trigger={"incomingCall": "call"}))
    out = store.send(call_event())
    assert [c for c in out.commands if isinstance(c, HttpRequest)] == []
    assert steps(out)[1] == ("failed", "call", "ko")
    assert "already controls a live call (CA1)" in twiml(out) and len(replies(out)) == 1
