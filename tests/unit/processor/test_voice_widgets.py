"""TwiML widgets: the exact TwiML each one answers with, and which transition Twilio's next request takes."""

from __future__ import annotations

from typing import Any

import pytest

from shared.messages import CancelTimer, ScheduleTimer

from .voice_helpers import (
    EMPTY,
    WEBHOOK,
    XML,
    Store,
    call_event,
    fire,
    flow,
    message_event,
    record,
    replies,
    steps,
    twiml,
    widget,
)

# -- say-play ------------------------------------------------------------------------------------


@pytest.mark.parametrize("props,document", [
    ({"say": "Hello {{trigger.call.From}}", "voice": "Polly.Joanna", "language": "en-US", "loop": 2},
     '<Say language="en-US" loop="2" voice="Polly.Joanna">Hello +15550001111</Say>'),
    ({"say": "Hi"}, '<Say loop="1">Hi</Say>'),
    ({"play": "https://cdn.example.com/a.mp3", "loop": "3"}, '<Play loop="3">https://cdn.example.com/a.mp3</Play>'),
    ({"digits": "1234w#"}, '<Play digits="1234w#" />'),
    ({"say": "x", "loop": 500}, '<Say loop="99">x</Say>'),
], ids=["say-with-voice", "say-defaults", "play", "digits", "loop-clamped-to-99"])
def test_say_play_answers_its_prompt_then_redirects_back_with_audio_complete(props: dict[str, Any], document: str) -> None:
    store = Store(flow(widget("hello", "say-play", {"audioComplete": None}, **props)))
    out = store.send(call_event())
    assert twiml(out) == (f'{XML}<Response>{document}'
                          f'<Redirect method="POST">{WEBHOOK}?FlowEvent=audioComplete</Redirect></Response>')
    assert record(out).status == "active"


def test_audio_complete_takes_the_transition_and_the_next_twiml_answers_that_request() -> None:
    store = Store(flow(widget("one", "say-play", {"audioComplete": "two"}, say="One"),
                       widget("two", "say-play", {"audioComplete": None}, say="Two")))
    store.send(call_event())
    out = store.send(call_event(flow_event="audioComplete"))
    assert steps(out) == [("audioComplete", "one", "two")]
    assert "<Say loop=\"1\">Two</Say>" in twiml(out)
    out = store.send(call_event(flow_event="audioComplete"))
    assert steps(out) == [("audioComplete", "two", "Ended")]
    assert twiml(out) == EMPTY and record(out).status == "ended"


# -- gather-input-on-call ------------------------------------------------------------------------

GATHER = dict(say="Press 1", voice="Polly.Joanna", language="en-US", loop=1, timeout=5, finish_on_key="#",
              number_of_digits=1, speech_timeout="auto", gather_language="en-GB", hints="yes, no",
              profanity_filter="true", stop_gather=True)


def test_gather_without_a_speech_transition_listens_for_keys_only() -> None:
    store = Store(flow(widget("menu", "gather-input-on-call", {"keypress": None, "speech": None, "timeout": None},
                              **GATHER)))
    assert twiml(store.send(call_event())) == (
        f'{XML}<Response><Gather action="{WEBHOOK}?FlowEvent=keypress" finishOnKey="#" input="dtmf" '
        'method="POST" numDigits="1" timeout="5"><Say language="en-US" loop="1" voice="Polly.Joanna">Press 1</Say>'
        f'</Gather><Redirect method="POST">{WEBHOOK}?FlowEvent=timeout</Redirect></Response>')


def test_gather_with_a_speech_transition_also_listens_for_speech() -> None:
    store = Store(flow(widget("menu", "gather-input-on-call", {"keypress": None, "speech": "x", "timeout": None},
                              **GATHER), widget("x", "say-play", {}, say="x")))
    assert twiml(store.send(call_event())) == (
        f'{XML}<Response><Gather action="{WEBHOOK}?FlowEvent=keypress" finishOnKey="#" hints="yes, no" '
        'input="dtmf speech" language="en-GB" method="POST" numDigits="1" profanityFilter="true" '
        'speechTimeout="auto" timeout="5"><Say language="en-US" loop="1" voice="Polly.Joanna">Press 1</Say>'
        f'</Gather><Redirect method="POST">{WEBHOOK}?FlowEvent=timeout</Redirect></Response>')


def test_gather_with_an_empty_finish_key_disables_it() -> None:
    store = Store(flow(widget("menu", "gather-input-on-call", {"keypress": None}, say="x", finish_on_key="")))
    assert 'finishOnKey=""' in twiml(store.send(call_event()))


@pytest.mark.parametrize("flow_event,params,transition,stored", [
    ("keypress", {"Digits": "42"}, "keypress", {"Digits": "42"}),
    ("keypress", {"SpeechResult": "sales please", "Confidence": "0.9"}, "speech",
     {"SpeechResult": "sales please", "Confidence": "0.9"}),
    ("speech", {"SpeechResult": "yes"}, "speech", {"SpeechResult": "yes"}),
    ("timeout", {}, "timeout", {}),
], ids=["digits", "speech-on-the-action", "speech-event", "no-input"])
def test_the_gather_action_takes_keypress_speech_or_timeout(flow_event: str, params: dict[str, str],
                                                            transition: str, stored: dict[str, str]) -> None:
    store = Store(flow(widget("menu", "gather-input-on-call", {"keypress": None, "speech": None, "timeout": None},
                              say="x")))
    store.send(call_event())
    out = store.send(call_event(params, flow_event=flow_event))
    assert steps(out) == [(transition, "menu", "Ended")]
    widgets = record(out).context["widgets"]["menu"]
    assert {k: widgets[k] for k in stored} == stored and widgets["CallSid"] == "CA1"


def test_gather_digits_drive_a_split() -> None:
    store = Store(flow(
        widget("menu", "gather-input-on-call", {"keypress": "route"}, say="1 or 2"),
        {"name": "route", "type": "split-based-on", "properties": {"input": "{{widgets.menu.Digits}}"},
         "transitions": [{"event": "noMatch", "next": "other"},
                         {"event": "match", "next": "two", "conditions": [
                             {"friendly_name": "2", "arguments": ["{{widgets.menu.Digits}}"], "type": "equal_to",
                              "value": "2"}]}]},
        widget("two", "say-play", {}, say="You chose two"), widget("other", "say-play", {}, say="Other")))
    store.send(call_event())
    out = store.send(call_event({"Digits": "2"}, flow_event="keypress"))
    assert steps(out) == [("keypress", "menu", "route"), ("match", "route", "two")]
    assert "You chose two" in twiml(out)


# -- connect-call-to -----------------------------------------------------------------------------


@pytest.mark.parametrize("props,inner", [
    ({"noun": "number", "to": "+15551112222, +15553334444", "caller_id": "{{contact.channel.address}}",
      "timeout": 12, "record": True},
     '<Dial action="{W}?FlowEvent=callCompleted" callerId="+15550001111" method="POST" record="record-from-answer" '
     'timeout="12"><Number>+15551112222</Number><Number>+15553334444</Number></Dial>'),
    ({"noun": "client", "to": "browser-agent", "caller_id": "+1999", "timeout": 30},
     '<Dial action="{W}?FlowEvent=callCompleted" callerId="+1999" method="POST" timeout="30">'
     '<Client>browser-agent</Client></Dial>'),
    ({"noun": "sip", "sip_endpoint": "sip:a@b.example.com", "sip_username": "u", "sip_password": "p"},
     '<Dial action="{W}?FlowEvent=callCompleted" callerId="+15550001111" method="POST">'
     '<Sip password="p" username="u">sip:a@b.example.com</Sip></Dial>'),
    ({"noun": "conference", "to": "room-1", "time_limit": "600"},
     '<Dial action="{W}?FlowEvent=callCompleted" callerId="+15550001111" method="POST" timeLimit="600">'
     '<Conference>room-1</Conference></Dial>'),
], ids=["numbers-simulring", "client", "sip", "conference"])
def test_connect_call_to_dials_with_an_action_back_to_the_flow(props: dict[str, Any], inner: str) -> None:
    store = Store(flow(widget("connect", "connect-call-to", {"callCompleted": None, "hangup": None}, **props)))
    assert twiml(store.send(call_event())) == f"{XML}<Response>{inner.replace('{W}', WEBHOOK)}</Response>"


@pytest.mark.parametrize("call_status,transition", [("in-progress", "callCompleted"), ("completed", "hangup")],
                         ids=["dialed-party-hung-up", "caller-hung-up"])
def test_the_dial_action_takes_call_completed_or_hangup(call_status: str, transition: str) -> None:
    store = Store(flow(widget("connect", "connect-call-to", {"callCompleted": None, "hangup": None}, to="+1")))
    store.send(call_event())
    out = store.send(call_event({"DialCallStatus": "no-answer", "CallStatus": call_status},
                                flow_event="callCompleted"))
    assert steps(out) == [(transition, "connect", "Ended")]
    assert record(out).context["widgets"]["connect"]["DialCallStatus"] == "no-answer"


# -- record-voicemail ----------------------------------------------------------------------------


def test_record_voicemail_records_with_an_action_and_falls_through_to_no_audio() -> None:
    store = Store(flow(widget("vm", "record-voicemail", {"recordingComplete": None}, timeout=5, max_length=3600,
                              play_beep="true", trim="do-not-trim", transcribe=True, finish_on_key="#",
                              transcription_callback_url="https://t.example.com/cb")))
    assert twiml(store.send(call_event())) == (
        f'{XML}<Response><Record action="{WEBHOOK}?FlowEvent=recordingComplete" finishOnKey="#" maxLength="3600" '
        'method="POST" playBeep="true" timeout="5" transcribe="true" '
        'transcribeCallback="https://t.example.com/cb" trim="do-not-trim" />'
        f'<Redirect method="POST">{WEBHOOK}?FlowEvent=noAudio</Redirect></Response>')


@pytest.mark.parametrize("flow_event,params,transition", [
    ("recordingComplete", {"RecordingUrl": "https://r/1", "RecordingDuration": "7"}, "recordingComplete"),
    ("recordingComplete", {"RecordingUrl": "https://r/1", "RecordingDuration": "0"}, "noAudio"),
    ("noAudio", {}, "noAudio"),
    ("recordingComplete", {"RecordingUrl": "https://r/1", "RecordingDuration": "7", "CallStatus": "completed"},
     "hangup"),
], ids=["recorded", "zero-length", "no-recording", "caller-hung-up"])
def test_the_record_action_takes_recording_complete_no_audio_or_hangup(flow_event: str, params: dict[str, str],
                                                                       transition: str) -> None:
    store = Store(flow(widget("vm", "record-voicemail", {"recordingComplete": None, "noAudio": None,
                                                          "hangup": None})))
    store.send(call_event())
    out = store.send(call_event(params, flow_event=flow_event))
    assert steps(out) == [(transition, "vm", "Ended")]


# -- enqueue-call --------------------------------------------------------------------------------

ENQUEUE_EVENTS = {"callComplete": None, "failedToEnqueue": None, "callFailure": None}
ENQUEUE_ACTION = f'action="{WEBHOOK}?FlowEvent=callComplete" method="POST"'

ENQUEUE_TWIML_CASES = [
    ("a named queue is the text of Enqueue, with the hold music URL",
     {"queue_name": "support-{{trigger.call.To}}", "wait_url": "https://hold.example.com/music",
      "wait_url_method": "get"},
     f'<Enqueue {ENQUEUE_ACTION} waitUrl="https://hold.example.com/music" waitUrlMethod="GET">'
     "support-+15559990000</Enqueue>"),
    ("a named queue ignores the TaskRouter-only properties",
     {"queue_name": "support", "priority": 5, "timeout": 60, "task_attributes": '{"a": 1}'},
     f"<Enqueue {ENQUEUE_ACTION}>support</Enqueue>"),
    ("a workflow sends the rendered task attributes, priority and timeout as its Task",
     {"workflow_sid": "WW" + "1" * 32, "priority": 1000, "timeout": "120",
      "task_attributes": '{"autodialer": "predictive", "to": "{{flow.channel.address}}"}'},
     f'<Enqueue {ENQUEUE_ACTION} workflowSid="WW{"1" * 32}"><Task priority="1000" timeout="120">'
     '{"autodialer": "predictive", "to": "+15559990000"}</Task></Enqueue>'),
    ("a workflow without task properties has no Task",
     {"workflow_sid": "WW" + "1" * 32, "queue_name": None, "priority": None, "task_attributes": None},
     f'<Enqueue {ENQUEUE_ACTION} workflowSid="WW{"1" * 32}" />'),
    ("a workflow with only a priority sends empty task attributes",
     {"workflow_sid": "WW" + "1" * 32, "priority": 3},
     f'<Enqueue {ENQUEUE_ACTION} workflowSid="WW{"1" * 32}"><Task priority="3">{{}}</Task></Enqueue>'),
    ("a workflow wins over a queue name",
     {"workflow_sid": "WW" + "1" * 32, "queue_name": "support"},
     f'<Enqueue {ENQUEUE_ACTION} workflowSid="WW{"1" * 32}" />'),
    ("the wait URL method is left out without a wait URL", {"queue_name": "q", "wait_url_method": "POST"},
     f"<Enqueue {ENQUEUE_ACTION}>q</Enqueue>"),
]


@pytest.mark.parametrize("props,document", [pytest.param(p, d, id=i) for i, p, d in ENQUEUE_TWIML_CASES])
def test_enqueue_call_answers_an_enqueue_whose_action_comes_back_to_the_flow(props: dict[str, Any],
                                                                             document: str) -> None:
    store = Store(flow(widget("queue", "enqueue-call", ENQUEUE_EVENTS, **props)))
    out = store.send(call_event())
    assert twiml(out) == f"{XML}<Response>{document}</Response>"
    assert store[record(out).sid].wait.events == ("callComplete", "hangup")


@pytest.mark.parametrize("queue_result,transition", [
    ("bridged", "callComplete"), ("bridging-in-process", "callComplete"), ("redirected-from-bridged", "callComplete"),
    ("hangup", "callComplete"), ("leave", "callComplete"), ("redirected", "callComplete"),
    ("queue-full", "failedToEnqueue"), ("error", "callFailure"), ("system-error", "callFailure"),
    ("something-new", "callFailure"), ("", "callFailure"),
], ids=lambda v: v or "missing")
def test_the_enqueue_action_takes_the_transition_its_queue_result_names(queue_result: str, transition: str) -> None:
    store = Store(flow(widget("queue", "enqueue-call", {"callComplete": "done", "failedToEnqueue": "full",
                                                       "callFailure": "broken"}, queue_name="support"),
                       *(widget(name, "say-play", {}, say=name) for name in ("done", "full", "broken"))))
    store.send(call_event())
    params = {"QueueSid": "QU" + "2" * 32, "QueueTime": "42"} | ({"QueueResult": queue_result} if queue_result else {})
    out = store.send(call_event(params, flow_event="callComplete"))
    next_widget = {"callComplete": "done", "failedToEnqueue": "full", "callFailure": "broken"}[transition]
    assert steps(out) == [(transition, "queue", next_widget)]
    queue = record(out).context["widgets"]["queue"]
    assert (queue.get("QueueResult", ""), queue["QueueSid"], queue["QueueTime"]) == (queue_result, "QU" + "2" * 32,
                                                                                     "42")
    assert queue["CallSid"] == "CA1" and "FlowEvent" not in queue
    assert f'<Say loop="1">{next_widget}</Say>' in twiml(out)


def test_a_caller_who_hangs_up_in_the_queue_takes_call_complete_and_ends_the_execution() -> None:
    store = Store(flow(widget("queue", "enqueue-call", {"callComplete": "bye"}, queue_name="support"),
                       widget("bye", "say-play", {}, say="Thanks")))
    store.send(call_event())
    out = store.send(call_event({"QueueResult": "hangup", "CallStatus": "completed"}, flow_event="callComplete"))
    assert steps(out) == [("callComplete", "queue", "bye")]
    assert record(out).status == "ended" and record(out).end_reason == "call_ended" and twiml(out) == EMPTY


def test_a_status_callback_before_the_enqueue_action_takes_call_complete() -> None:
    store = Store(flow(widget("queue", "enqueue-call", {"callComplete": None}, queue_name="support")))
    store.send(call_event())
    out = store.send(call_event({"CallStatus": "completed", "CallDuration": "30"}))
    assert steps(out) == [("callComplete", "queue", "Ended")]
    assert record(out).context["widgets"]["queue"]["CallStatus"] == "completed"
    late = store.send(call_event({"QueueResult": "hangup", "CallStatus": "completed"}, flow_event="callComplete"))
    assert late.records == [] and twiml(late) == EMPTY


def test_enqueue_call_without_a_queue_or_workflow_takes_failed_to_enqueue_at_once() -> None:
    store = Store(flow(widget("queue", "enqueue-call", {"failedToEnqueue": "sorry"}, queue_name="{{flow.data.none}}"),
                       widget("sorry", "say-play", {}, say="Sorry")))
    out = store.send(call_event())
    assert steps(out)[1] == ("failedToEnqueue", "queue", "sorry")
    assert "neither queue_name nor workflow_sid" in record(out).context["widgets"]["queue"]["error"]
    assert "<Enqueue" not in twiml(out) and '<Say loop="1">Sorry</Say>' in twiml(out)


# -- a call-only widget without a call -----------------------------------------------------------


@pytest.mark.parametrize("type_,props", [("say-play", {"say": "Hi"}), ("enqueue-call", {"queue_name": "support"})])
def test_a_call_widget_in_a_message_execution_ends_it_with_81002(type_: str, props: dict[str, Any]) -> None:
    store = Store(flow(widget("hello", type_, {}, **props), trigger={"incomingMessage": "hello"}))
    out = store.send(message_event())
    assert steps(out) == [("incomingMessage", "Trigger", "hello"), ("81002", "hello", "Ended")]
    assert record(out).status == "ended" and record(out).context["error"]["code"] == 81002
    assert twiml(out) == EMPTY


# -- add-twiml-redirect --------------------------------------------------------------------------

REDIRECT = {"return": "after", "timeout": "timed_out", "fail": "failed"}
TAIL = [widget("after", "say-play", {}, say="Back: {{widgets.away.foo}}"),
        widget("timed_out", "set-variables", {"next": None}, variables=[{"key": "t", "value": "yes"}]),
        widget("failed", "set-variables", {"next": None}, variables=[{"key": "f", "value": "yes"}])]


def redirect_store(**props: Any) -> Store:
    return Store(flow(widget("away", "add-twiml-redirect", REDIRECT, **props), *TAIL))


@pytest.mark.parametrize("props,method,timeout", [
    ({"url": "https://app.example.com/twiml?x={{trigger.call.From}}"}, "POST", 14400),
    ({"url": "https://app.example.com/twiml", "method": "GET", "timeout": "30"}, "GET", 30),
    ({"url": "https://app.example.com/twiml", "method": "post", "timeout": "14400"}, "POST", 14400),
], ids=["defaults", "get-30s", "explicit-max"])
def test_a_redirect_answers_a_redirect_and_waits_on_a_durable_timer(props: dict[str, Any], method: str,
                                                                    timeout: int) -> None:
    store = redirect_store(**props)
    out = store.send(call_event())
    url = props["url"].replace("{{trigger.call.From}}", "+15550001111")
    assert twiml(out) == f'{XML}<Response><Redirect method="{method}">{url}</Redirect></Response>'
    timers = [c for c in out.commands if isinstance(c, ScheduleTimer) and c.token != "expiry"]
    assert len(timers) == 1 and timers[0].due_at == store.now + timeout
    assert store[record(out).sid].wait.events == ("return",)


@pytest.mark.parametrize("props,reason", [
    ({"url": "not a url"}, "not a valid"),
    ({"url": "{{flow.variables.missing}}"}, "not a valid"),
    ({"url": "/relative/path"}, "not a valid"),
    ({"url": "ftp://files.example.com/x"}, "not a valid"),
    ({"url": "https://app.example.com/{% if %}"}, "81018"),
    ({"url": "https://app.example.com/", "timeout": "14401"}, "timeout must be"),
    ({"url": "https://app.example.com/", "timeout": "-1"}, "timeout must be"),
    ({"url": "https://app.example.com/", "timeout": "ten"}, "timeout must be"),
    ({"url": "https://app.example.com/", "method": "PUT"}, "method must be"),
], ids=["spaces", "renders-empty", "relative", "not-http", "template-error", "timeout-too-long",
        "timeout-negative", "timeout-not-a-number", "bad-method"])
def test_a_redirect_that_cannot_be_made_takes_fail_at_once(props: dict[str, Any], reason: str) -> None:
    store = redirect_store(**props)
    out = store.send(call_event())
    assert steps(out)[1:] == [("fail", "away", "failed"), ("next", "failed", "Ended")]
    assert reason in record(out).context["widgets"]["away"]["error"]
    assert not [c for c in out.commands if isinstance(c, ScheduleTimer) and c.token != "expiry"]


def test_a_return_resumes_on_return_with_every_other_parameter_in_the_widget() -> None:
    store = redirect_store(url="https://app.example.com/twiml")
    timer = next(c for c in store.send(call_event()).commands if isinstance(c, ScheduleTimer) and c.token != "expiry")
    out = store.send(call_event({"foo": "bar", "test": "success"}, flow_event="return"))
    assert steps(out) == [("return", "away", "after")]
    widgets = record(out).context["widgets"]["away"]
    assert widgets["foo"] == "bar" and widgets["test"] == "success" and "FlowEvent" not in widgets
    assert '<Say loop="1">Back: bar</Say>' in twiml(out)
    assert CancelTimer(timer.timer_id) in out.commands


def test_the_timer_takes_timeout_and_a_late_return_is_ignored() -> None:
    store = Store(flow(widget("away", "add-twiml-redirect", {"return": "after", "timeout": "wait"},
                              url="https://app.example.com/", timeout="5"),
                       widget("after", "say-play", {}, say="x"),
                       widget("wait", "make-http-request", {"success": None, "failed": None},
                              url="https://log.example.com/")))
    timer = next(c for c in store.send(call_event()).commands if isinstance(c, ScheduleTimer) and c.token != "expiry")
    out = fire(store, timer)
    assert steps(out) == [("timeout", "away", "wait")]
    state = store[timer.execution_sid]
    assert state.call_released
    late = store.send(call_event({"foo": "bar"}, flow_event="return"))
    assert late.records == [] and twiml(late) == EMPTY  # the call is not regained
    assert store[timer.execution_sid].wait.widget == "wait"
    assert fire(store, timer).records == []  # a second fire of the same timer is ignored too


def test_after_a_timeout_a_twiml_widget_ends_the_execution_because_the_call_is_lost() -> None:
    store = Store(flow(widget("away", "add-twiml-redirect", {"timeout": "sorry"}, url="https://a.example.com/",
                              timeout="5"), widget("sorry", "say-play", {"audioComplete": None}, say="Sorry")))
    timer = next(c for c in store.send(call_event()).commands if isinstance(c, ScheduleTimer) and c.token != "expiry")
    out = fire(store, timer)
    assert steps(out) == [("timeout", "away", "sorry")]
    assert record(out).status == "ended" and record(out).end_reason == "call_ended"


def test_a_fire_after_the_return_is_ignored() -> None:
    store = redirect_store(url="https://app.example.com/")
    timer = next(c for c in store.send(call_event()).commands if isinstance(c, ScheduleTimer) and c.token != "expiry")
    store.send(call_event({"foo": "1"}, flow_event="return"))
    assert fire(store, timer).records == []


def test_timeout_zero_answers_the_redirect_and_takes_timeout_at_once() -> None:
    store = Store(flow(widget("away", "add-twiml-redirect", {"return": "after", "timeout": "log"},
                              url="https://app.example.com/handoff", timeout="0"),
                       widget("after", "say-play", {}, say="never"),
                       widget("log", "set-variables", {"next": "bye"}, variables=[{"key": "handed", "value": "1"}]),
                       widget("bye", "say-play", {}, say="unreachable")))
    out = store.send(call_event())
    assert twiml(out) == f'{XML}<Response><Redirect method="POST">https://app.example.com/handoff</Redirect></Response>'
    assert steps(out)[1:] == [("timeout", "away", "log"), ("next", "log", "bye")]
    assert record(out).status == "ended" and record(out).end_reason == "call_ended"
    assert not [c for c in out.commands if isinstance(c, ScheduleTimer) and c.token != "expiry"]
    late = store.send(call_event({"foo": "bar"}, flow_event="return"))
    assert late.records == [] and twiml(late) == EMPTY


def test_a_redirect_in_a_message_execution_works_like_in_a_call() -> None:
    store = Store(flow(widget("away", "add-twiml-redirect", {"return": None}, url="https://sms.example.com/"),
                       trigger={"incomingMessage": "away"}))
    out = store.send(message_event())
    assert "<Redirect method=\"POST\">https://sms.example.com/</Redirect>" in twiml(out)
    out = store.send(message_event(flow_event="return"))
    assert steps(out) == [("return", "away", "Ended")]
    assert len(replies(out)) == 1
