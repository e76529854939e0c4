"""Which execution a Twilio webhook starts, resumes or ends, and what the webhook is answered with."""

from __future__ import annotations

import pytest

from shared.messages import HttpRequest, HttpResult, ScheduleTimer

from .voice_helpers import (
    CALLER,
    EMPTY,
    NUMBER,
    ROUTE,
    XML,
    Store,
    call_event,
    flow,
    message_event,
    record,
    replies,
    steps,
    twiml,
    widget,
)

GATHER = widget("menu", "gather-input-on-call", {"keypress": "bye", "timeout": None}, say="Press a key")
BYE = widget("bye", "say-play", {"audioComplete": None}, say="Bye {{widgets.menu.Digits}}")


def test_an_incoming_call_starts_an_execution_with_the_call_in_the_trigger_and_both_addresses() -> None:
    store = Store(flow(GATHER, BYE))
    out = store.send(call_event({"CallerCity": "Oslo"}))
    context = record(out).context
    assert steps(out) == [("incomingCall", "Trigger", "menu")]
    assert context["trigger"]["call"]["CallSid"] == "CA1" and context["trigger"]["call"]["CallerCity"] == "Oslo"
    assert context["contact"]["channel"]["address"] == CALLER
    assert context["flow"]["channel"]["address"] == NUMBER
    assert record(out).initiated_by == "CA1"
    assert replies(out)[0].partition == 2 and "<Gather" in twiml(out)


def test_an_incoming_message_starts_an_execution_with_the_message_in_the_trigger() -> None:
    store = Store(flow(widget("note", "set-variables", {"next": None}, variables=[
        {"key": "said", "value": "{{trigger.message.Body}}"}]), trigger={"incomingMessage": "note"}))
    out = store.send(message_event("hello there"))
    assert steps(out) == [("incomingMessage", "Trigger", "note"), ("next", "note", "Ended")]
    assert record(out).context["flow"]["variables"] == {"said": "hello there"}
    assert record(out).initiated_by == "SM1"
    assert twiml(out) == EMPTY


def test_an_outbound_call_has_the_called_party_as_contact() -> None:
    store = Store(flow(GATHER, BYE))
    out = store.send(call_event({"Direction": "outbound-api", "From": NUMBER, "To": CALLER}))
    context = record(out).context
    assert context["contact"]["channel"]["address"] == CALLER and context["flow"]["channel"]["address"] == NUMBER


def test_a_flow_event_resumes_the_execution_of_that_call_only() -> None:
    store = Store(flow(GATHER, BYE))
    store.send(call_event(call_sid="CA1"))
    store.send(call_event(call_sid="CA2"))
    out = store.send(call_event({"Digits": "7"}, flow_event="keypress", call_sid="CA2"))
    assert steps(out) == [("keypress", "menu", "bye")]
    assert record(out).context["trigger"]["call"]["CallSid"] == "CA2"
    assert "Bye 7" in twiml(out)


def test_with_allow_concurrent_calls_off_a_second_call_from_the_contact_is_rejected_busy() -> None:
    store = Store(flow(GATHER, BYE, concurrent=False))
    store.send(call_event(call_sid="CA1"))
    out = store.send(call_event(call_sid="CA2"))
    assert twiml(out) == f'{XML}<Response><Reject reason="busy" /></Response>'
    assert out.records == [] and len(store) == 1


def test_a_message_never_lands_in_a_concurrent_call_and_starts_its_own_execution() -> None:
    store = Store(flow(GATHER, BYE, widget("away", "add-twiml-redirect", {}, url="https://sms.example.com/"),
                       trigger={"incomingCall": "menu", "incomingMessage": "away"}))
    store.send(call_event())
    out = store.send(message_event())
    assert steps(out) == [("incomingMessage", "Trigger", "away")]
    assert len(store) == 2 and len(store.routes[ROUTE].active) == 2


def test_a_message_for_an_execution_that_does_not_wait_for_one_is_ignored() -> None:
    store = Store(flow(widget("away", "add-twiml-redirect", {"return": None}, url="https://a.example.com/"),
                       trigger={"incomingMessage": "away"}))
    store.send(message_event())
    out = store.send(message_event("again"))
    assert out.records == [] and twiml(out) == EMPTY


@pytest.mark.parametrize("params", [{"MessageStatus": "delivered", "SmsStatus": "delivered"},
                                    {"SmsStatus": "sent"}], ids=["message-status", "sms-status"])
def test_a_message_status_callback_neither_resumes_nor_starts_anything(params: dict[str, str]) -> None:
    store = Store(flow(widget("w", "send-and-wait-for-reply", {"incomingMessage": None}, body="x"),
                       trigger={"incomingMessage": "w"}))
    out = store.send(call_event(params, channel="message", route="FWflow:+15559990000"))
    assert out.records == [] and twiml(out) == EMPTY and len(store) == 0
    store.send(message_event())
    waiting = dict(store)
    out = store.send(call_event(params, channel="message"))
    assert out.records == [] and twiml(out) == EMPTY and dict(store) == waiting


def test_a_flow_event_for_an_unknown_call_is_answered_with_an_empty_response() -> None:
    store = Store(flow(GATHER, BYE))
    out = store.send(call_event({"Digits": "1"}, flow_event="keypress", call_sid="CA404"))
    assert out.records == [] and twiml(out) == EMPTY and len(store) == 0


def test_a_flow_event_the_parked_widget_does_not_accept_is_answered_with_its_twiml() -> None:
    store = Store(flow(GATHER, BYE))
    first = twiml(store.send(call_event()))
    out = store.send(call_event(flow_event="audioComplete"))
    assert out.records == [] and twiml(out) == first


def test_a_replayed_flow_event_is_not_applied_twice() -> None:
    store = Store(flow(widget("one", "gather-input-on-call", {"keypress": "two"}, say="1"),
                       widget("two", "gather-input-on-call", {"keypress": None}, say="2")))
    store.send(call_event())
    event = call_event({"Digits": "5"}, flow_event="keypress")
    assert steps(store.send(event)) == [("keypress", "one", "two")]
    again = store.send(event)
    assert again.records == [] and '<Say loop="1">2</Say>' in twiml(again)


def test_a_replayed_start_does_not_start_or_resume_anything() -> None:
    store = Store(flow(widget("w", "send-and-wait-for-reply", {}, body="x"), trigger={"incomingMessage": "w"}))
    start = message_event()
    store.send(start)
    again = store.send(start)
    assert again.records == [] and twiml(again) == EMPTY


# -- status callbacks ----------------------------------------------------------------------------


def test_a_completed_status_callback_ends_an_execution_parked_on_a_gather() -> None:
    store = Store(flow(GATHER, BYE))
    store.send(call_event())
    out = store.send(call_event({"CallStatus": "completed"}))
    assert record(out).status == "ended" and record(out).end_reason == "call_ended"
    assert store.routes[ROUTE].active == [] and twiml(out) == EMPTY


def test_a_status_callback_while_dialing_takes_the_hangup_transition() -> None:
    store = Store(flow(widget("dial", "connect-call-to", {"callCompleted": None, "hangup": "note"}, to="+1"),
                       widget("note", "set-variables", {"next": None}, variables=[{"key": "h", "value": "1"}])))
    store.send(call_event())
    out = store.send(call_event({"CallStatus": "completed"}))
    assert steps(out) == [("hangup", "dial", "note"), ("next", "note", "Ended")]


def test_after_the_caller_hung_up_non_twiml_widgets_run_on_and_the_next_twiml_widget_stops_it() -> None:
    store = Store(flow(widget("lookup", "make-http-request", {"success": "say", "failed": "say"},
                              url="https://api.example.com/x"), widget("say", "say-play", {}, say="Hi")))
    out = store.send(call_event())
    request = next(c for c in out.commands if isinstance(c, HttpRequest))
    hung_up = store.send(call_event({"CallStatus": "completed"}))
    assert hung_up.commands and twiml(hung_up) == EMPTY and store[request.execution_sid].status == "active"
    done = store.send(HttpResult(request.request_id, request.execution_sid, request.route, request.token, True, 200,
                                 "text/plain", "ok", "", "2xx", 0.1))
    assert steps(done) == [("success", "lookup", "say")]
    assert record(done).end_reason == "call_ended"
    assert [r.twiml for r in replies(done)] == [EMPTY]  # the first webhook, still waiting, is told to hang up


def test_a_status_callback_for_an_ended_execution_is_answered_and_ignored() -> None:
    store = Store(flow(BYE))
    store.send(call_event())
    store.send(call_event(flow_event="audioComplete"))
    out = store.send(call_event({"CallStatus": "completed"}))
    assert out.records == [] and twiml(out) == EMPTY


# -- waiting for HTTP and the keep-alive redirect ------------------------------------------------

HTTP_FIRST = [widget("lookup", "make-http-request", {"success": "greet", "failed": "greet"},
                     url="https://api.example.com/name"),
              widget("greet", "say-play", {"audioComplete": None}, say="Hello {{widgets.lookup.body}}")]


def _result(request: HttpRequest, body: str = "Ann") -> HttpResult:
    return HttpResult(request.request_id, request.execution_sid, request.route, request.token, True, 200,
                      "text/plain", body, "", "2xx", 0.1)


def test_the_webhook_is_answered_only_when_the_http_widget_is_done_and_twiml_is_known() -> None:
    store = Store(flow(*HTTP_FIRST))
    out = store.send(call_event(reply="first"))
    assert replies(out) == []
    request = next(c for c in out.commands if isinstance(c, HttpRequest))
    done = store.send(_result(request))
    [reply] = replies(done)
    assert reply.reply_id == "first" and '<Say loop="1">Hello Ann</Say>' in reply.twiml


def test_a_keepalive_during_the_http_widget_takes_over_and_gets_the_twiml() -> None:
    store = Store(flow(*HTTP_FIRST))
    request = next(c for c in store.send(call_event(reply="first")).commands if isinstance(c, HttpRequest))
    keepalive = store.send(call_event(flow_event="keepalive", reply="second"))
    assert replies(keepalive) == [] and keepalive.records[-1].status == "active"
    [reply] = replies(store.send(_result(request)))
    assert reply.reply_id == "second" and "Hello Ann" in reply.twiml


def test_a_keepalive_after_the_answer_was_lost_gets_the_current_twiml() -> None:
    store = Store(flow(*HTTP_FIRST))
    request = next(c for c in store.send(call_event(reply="first")).commands if isinstance(c, HttpRequest))
    store.send(_result(request))  # answered to "first", which the ingress had already given up on
    out = store.send(call_event(flow_event="keepalive", reply="second"))
    assert out.records == [] and "Hello Ann" in twiml(out)


def test_a_message_webhook_also_waits_for_the_http_widget() -> None:
    store = Store(flow(widget("lookup", "make-http-request", {"success": None}, url="https://api.example.com/"),
                       trigger={"incomingMessage": "lookup"}))
    out = store.send(message_event(reply="m1"))
    assert replies(out) == []
    request = next(c for c in out.commands if isinstance(c, HttpRequest))
    [reply] = replies(store.send(_result(request)))
    assert reply.reply_id == "m1" and reply.twiml == EMPTY


def test_the_redirect_timer_is_scheduled_from_a_webhook_started_execution() -> None:
    store = Store(flow(widget("away", "add-twiml-redirect", {"return": None}, url="https://a.example.com/",
                              timeout="2")))
    out = store.send(call_event())
    [timer] = [c for c in out.commands if isinstance(c, ScheduleTimer) and c.token != "expiry"]
    assert timer.route == ROUTE and timer.due_at == store.now + 2
