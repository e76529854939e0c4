"""Call Recording (``record-call``): the Call Recordings API request it makes, and what each answer does.

The widget works on the live call through Twilio's REST API (via the
http-worker), so these tests play the call's webhooks and the API's answers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from shared.ids import derived_sid
from shared.messages import HttpRequest

from .harness import Harness, flow_of, http_result
from .voice_helpers import ACCOUNT, EMPTY, XML, Store, call_event, flow, record, replies, steps, twiml, widget

RECORDINGS = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Calls/CA1/Recordings"
RECORDING_SID = "RE" + "7" * 32
TWILIO_PROPS = {"trim": "do-not-trim", "recording_status_callback": "https://example.com/rec",
                "recording_status_callback_method": "POST", "recording_status_callback_events": "completed",
                "recording_channels": "dual"}


def recording_resource(status: str = "in-progress", **extra: Any) -> str:
    return orjson.dumps({
        "account_sid": ACCOUNT, "api_version": "2010-04-01", "call_sid": "CA1", "conference_sid": None,
        "channels": 2, "date_created": "Tue, 14 Nov 2023 22:13:20 +0000", "start_time": "Tue, 14 Nov 2023 22:13:20 "
        "+0000", "duration": None, "sid": RECORDING_SID, "price": None, "price_unit": "USD", "status": status,
        "source": "StartCallRecordingAPI", "error_code": None, "encryption_details": {"type": "rsa"},
        "track": "both", "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Calls/CA1/Recordings/{RECORDING_SID}.json",
        **extra}).decode()


def recording_store(**props: Any) -> Store:
    """hello (say-play) → rec (record-call) → ok (say-play) | ko (say-play)."""
    return Store(flow(widget("hello", "say-play", {"audioComplete": "rec"}, say="Hello"),
                      widget("rec", "record-call", {"success": "ok", "failed": "ko"}, **props),
                      widget("ok", "say-play", {"audioComplete": None}, say="Recording: {{widgets.rec.Status}}"),
                      widget("ko", "say-play", {"audioComplete": None}, say="Failed: {{widgets.rec.error}}")))


def requests(outcome: Any) -> list[HttpRequest]:
    return [c for c in outcome.commands if isinstance(c, HttpRequest)]


def at_record_call(**props: Any) -> tuple[Store, HttpRequest, Any]:
    """A call that has heard the Say and whose audioComplete reached the Call Recording widget."""
    store = recording_store(**props)
    store.send(call_event())
    out = store.send(call_event(flow_event="audioComplete", reply="waiting"))
    (request,) = requests(out)
    return store, request, out


# -- the request ----------------------------------------------------------------------------------

REQUEST_CASES = [
    ("starting sends every recording property Studio exports as the API's field",
     {"record_call": True, **TWILIO_PROPS}, f"{RECORDINGS}.json",
     [["RecordingStatusCallback", "https://example.com/rec"], ["RecordingStatusCallbackMethod", "POST"],
      ["RecordingStatusCallbackEvent", "completed"], ["RecordingChannels", "dual"], ["Trim", "do-not-trim"]]),
    ("starting without properties leaves Twilio's defaults", {"record_call": True}, f"{RECORDINGS}.json", []),
    ("starting renders Liquid, upper-cases the method and sends one field per callback event",
     {"record_call": True, "recording_status_callback": "https://cb.example.com/{{trigger.call.CallSid}}",
      "recording_status_callback_method": "get", "recording_status_callback_events": "in-progress, completed absent",
      "recording_channels": "", "trim": "trim-silence"}, f"{RECORDINGS}.json",
     [["RecordingStatusCallback", "https://cb.example.com/CA1"], ["RecordingStatusCallbackMethod", "GET"],
      ["RecordingStatusCallbackEvent", "in-progress"], ["RecordingStatusCallbackEvent", "completed"],
      ["RecordingStatusCallbackEvent", "absent"], ["Trim", "trim-silence"]]),
    ("stopping updates the call's current recording to stopped and sends nothing else",
     {"record_call": False, **TWILIO_PROPS}, f"{RECORDINGS}/Twilio.CURRENT.json", [["Status", "stopped"]]),
]


@pytest.mark.parametrize("props,url,form", [pytest.param(p, u, f, id=i) for i, p, u, f in REQUEST_CASES])
def test_record_call_posts_to_the_call_recordings_api_with_the_account_credentials(
        props: dict[str, Any], url: str, form: list[list[str]]) -> None:
    _, request, _ = at_record_call(**props)
    assert (request.method, request.url, request.purpose, request.twilio_auth, request.accept_3xx) == (
        "POST", url, "recording", True, False)
    assert request.content_type.startswith("application/x-www-form-urlencoded")
    assert request.form == form and request.query == [] and request.body is None
    assert request.request_id == derived_sid("RQ", request.execution_sid, request.token)


def test_the_webhook_that_waits_for_twiml_keeps_waiting_until_the_recording_request_is_answered() -> None:
    store, request, out = at_record_call(record_call=True)
    assert replies(out) == [] and record(out).status == "active"
    answered = store.send(http_result(request, 201, recording_resource()))
    (reply,) = replies(answered)
    assert reply.reply_id == "waiting"
    assert reply.twiml == f'{XML}<Response><Say loop="1">Recording: in-progress</Say>' \
        f'<Redirect method="POST">https://sb.example.com/v1/Accounts/{ACCOUNT}/Flows/FWflow?FlowEvent=audioComplete' \
        '</Redirect></Response>'


def test_record_call_as_the_first_widget_answers_the_incoming_call_once_twilio_answered() -> None:
    store = Store(flow(widget("rec", "record-call", {"success": "hi"}, record_call=True),
                       widget("hi", "say-play", {"audioComplete": None}, say="Hi")))
    out = store.send(call_event(reply="incoming"))
    assert replies(out) == []
    answered = store.send(http_result(requests(out)[0], 201, recording_resource()))
    assert [r.reply_id for r in replies(answered)] == ["incoming"] and "<Say loop=\"1\">Hi</Say>" in twiml(answered)


# -- the answer -----------------------------------------------------------------------------------


@pytest.mark.parametrize("record_call,status", [(True, "in-progress"), (False, "stopped")], ids=["start", "stop"])
def test_a_2xx_answer_takes_success_with_the_recording_resource_in_studio_names(record_call: bool,
                                                                              status: str) -> None:
    store, request, _ = at_record_call(record_call=record_call)
    out = store.send(http_result(request, 201 if record_call else 200, recording_resource(status)))
    assert steps(out) == [("success", "rec", "ok")]
    rec = record(out).context["widgets"]["rec"]
    assert (rec["Sid"], rec["CallSid"], rec["AccountSid"], rec["Status"]) == (RECORDING_SID, "CA1", ACCOUNT, status)
    assert (rec["Channels"], rec["Source"], rec["Track"], rec["ErrorCode"]) == (2, "StartCallRecordingAPI", "both",
                                                                                 None)
    assert rec["Uri"].endswith(f"/Recordings/{RECORDING_SID}.json") and "EncryptionDetails" not in rec


FAILED_CASES = [
    ("a call that is not in progress is refused by Twilio",
     dict(status=400, body='{"code": 21220, "message": "Invalid call state", "status": 400}', error="HTTP 400"),
     "Twilio error 21220: Invalid call state (HTTP 400)"),
    ("stopping when nothing is being recorded is Twilio's 404",
     dict(status=404, body='{"code": 20404, "message": "The requested resource was not found", "status": 404}',
          error="HTTP 404"), "Twilio error 20404: The requested resource was not found (HTTP 404)"),
    ("a 5xx without Twilio's error body",
     dict(status=503, body="<html>down</html>", content_type="text/html", error="HTTP 503"),
     "the Call Recordings API answered HTTP 503"),
    ("no answer within the http-worker's timeout",
     dict(status=None, outcome="timeout", error="no complete response within 10 s"),
     "no complete response within 10 s"),
    ("a connection error", dict(status=None, outcome="connection_error", error="ClientConnectorError: refused"),
     "ClientConnectorError: refused"),
]


@pytest.mark.parametrize("result,error", [pytest.param(r, e, id=i) for i, r, e in FAILED_CASES])
def test_a_refused_or_unanswered_recording_request_takes_failed_with_the_reason(result: dict[str, Any],
                                                                              error: str) -> None:
    store, request, _ = at_record_call(record_call=True, **TWILIO_PROPS)
    out = store.send(http_result(request, **result))
    assert steps(out) == [("failed", "rec", "ko")]
    assert record(out).context["widgets"]["rec"] == {"error": error}
    assert f"Failed: {error}" in twiml(out)


@pytest.mark.parametrize("trigger", ["rest", "message"])
@pytest.mark.parametrize("record_call", [True, False], ids=["start", "stop"])
def test_without_a_live_call_record_call_takes_failed_without_a_request(trigger: str, record_call: bool) -> None:
    leaf = {"type": "set-variables", "properties": {"variables": []}, "transitions": [{"event": "next"}]}
    h = Harness(flow_of({"name": "rec", "type": "record-call", "properties": {"record_call": record_call},
                         "transitions": [{"event": "success", "next": "ok"}, {"event": "failed", "next": "ko"}]},
                        {"name": "ok", **leaf}, {"name": "ko", **leaf}))
    if trigger == "rest":
        h.start()
    else:
        h.message("record me")
    assert h.requests() == []
    assert h.path()[1:] == [("failed", "rec", "ko"), ("next", "ko", "Ended")]
    error = h.context["widgets"]["rec"]["error"]
    assert "needs a live call" in error and "nothing was sent" in error
    assert h.record().status == "ended" and "error" not in h.context  # the flow handled it: no 81002


def test_a_liquid_error_in_a_property_takes_failed_with_81018_without_a_request() -> None:
    store = recording_store(record_call=True, recording_status_callback="https://x/{{ 1 | divided_by: 0 }}")
    store.send(call_event())
    out = store.send(call_event(flow_event="audioComplete"))
    assert requests(out) == []
    assert steps(out)[1] == ("failed", "rec", "ko")
    assert record(out).context["widgets"]["rec"]["error"].startswith("81018: ")


# -- late, duplicate and replayed results ---------------------------------------------------------


def test_a_duplicate_result_after_the_widget_moved_on_is_ignored() -> None:
    store, request, _ = at_record_call(record_call=True)
    store.send(http_result(request, 201, recording_resource()))
    again = store.send(http_result(request, 500, "boom", error="HTTP 500"))
    assert again.records == [] and again.commands == []
    assert store[request.execution_sid].wait.widget == "ok"


@pytest.mark.parametrize("change", [{"request_id": "RQother"}, {"token": "99", "request_id": "RQother"}],
                         ids=["another-request-id", "another-wait"])
def test_a_result_for_another_request_is_ignored(change: dict[str, str]) -> None:
    store, request, _ = at_record_call(record_call=True)
    stray = store.send(http_result(dataclasses.replace(request, **change), 201, recording_resource()))
    assert stray.records == [] and stray.commands == []
    assert store[request.execution_sid].wait.widget == "rec"


def test_a_crash_replay_resends_the_request_only_until_twilio_answered_it() -> None:
    store = recording_store(record_call=True)
    start, audio_complete = call_event(), call_event(flow_event="audioComplete", reply="waiting")
    store.send(start, offset=0)
    (request,) = requests(store.send(audio_complete, offset=1))
    assert requests(store.send(audio_complete, offset=1)) == [request]  # lost before it reached Kafka: sent again
    answered = store.send(http_result(request, 201, recording_resource()), offset=2)
    replayed = store.send(audio_complete, offset=1)
    assert requests(replayed) == []  # answered already: never repeated
    replayed_result = store.send(http_result(request, 201, recording_resource()), offset=2)
    assert replayed_result.replayed and steps(replayed_result) == steps(answered) == [("success", "rec", "ok")]
    assert store[request.execution_sid].wait.widget == "ok"


def test_a_caller_who_hangs_up_during_the_request_ends_the_execution_at_the_next_twiml_widget() -> None:
    store, request, _ = at_record_call(record_call=False)
    hung_up = store.send(call_event({"CallStatus": "completed"}))
    assert hung_up.records[-1].status == "active" and twiml(hung_up) == EMPTY
    out = store.send(http_result(request, 200, recording_resource("stopped")))
    assert steps(out) == [("success", "rec", "ok")]
    assert record(out).status == "ended" and record(out).end_reason == "call_ended"
    assert [(r.reply_id, r.twiml) for r in replies(out)] == [("waiting", EMPTY)]  # the waiting webhook is let go
