"""The widgets that answer a live call or message with TwiML, and how Twilio's next request resumes them.

Every TwiML widget parks the execution on a ``webhook`` wait whose ``twiml`` is
the document below; the webhook that is waiting for this execution answers
with it. The URLs in it point back at the flow webhook with
``?FlowEvent=<event>`` (``WEBHOOK`` below is
``{SWITCHBOARD_PUBLIC_BASE_URL}/v1/Accounts/{AccountSid}/Flows/{FlowSid}``), so
Twilio's next request names the transition it resumes. Attributes are emitted
only when the widget sets the property; text and URLs are Liquid-rendered.
Every parameter of the resuming request (except ``FlowEvent``) is stored at
``widgets.NAME.<param>`` (``Digits``, ``SpeechResult``, ``DialCallStatus``,
``RecordingUrl``, ``QueueResult``, ``CallSid``…).

``say-play`` → ``audioComplete``::

    <Response><Say voice=".." language=".." loop="N">text</Say>        (or <Play loop="N">url</Play>,
      <Redirect method="POST">WEBHOOK?FlowEvent=audioComplete</Redirect>   or <Play digits="..."/>)
    </Response>

``gather-input-on-call`` → ``keypress`` | ``speech`` | ``timeout``::

    <Response>
      <Gather action="WEBHOOK?FlowEvent=keypress" method="POST" input="dtmf[ speech]" timeout="5"
              finishOnKey="#" numDigits="N" [speech: language speechTimeout speechModel hints profanityFilter]>
        <Say voice language loop>say</Say>                               (or <Play loop>play</Play>)
      </Gather>
      <Redirect method="POST">WEBHOOK?FlowEvent=timeout</Redirect>
    </Response>

  ``input`` includes ``speech`` only when the ``speech`` transition leads
  somewhere (Studio: "connecting speech enables speech recognition"). Twilio
  posts the action with ``Digits`` or ``SpeechResult``: a non-empty
  ``SpeechResult`` takes ``speech``, anything else ``keypress``. No input:
  Twilio skips the action and follows the ``<Redirect>`` → ``timeout``.
  ``stop_gather`` has no TwiML attribute we could confirm and is not emitted.

``connect-call-to`` → ``callCompleted`` | ``hangup``::

    <Response><Dial action="WEBHOOK?FlowEvent=callCompleted" method="POST" callerId=".." timeout="30"
                    timeLimit=".." record="record-from-answer">
      <Number>+1…</Number>…      (noun number: up to 10 comma-separated numbers ring at once;
    </Dial></Response>            client → <Client>, sip → <Sip username password>, sim → <Sim>,
                                  conference → <Conference>)

  The ``<Dial>`` action with ``CallStatus=completed`` (the caller hung up) takes
  ``hangup``; otherwise ``callCompleted``.

``record-voicemail`` → ``recordingComplete`` | ``noAudio`` | ``hangup``::

    <Response>
      <Record action="WEBHOOK?FlowEvent=recordingComplete" method="POST" timeout="5" finishOnKey="#"
              maxLength="3600" playBeep="true" trim="trim-silence" transcribe="true"
              transcribeCallback=".." recordingStatusCallback=".."/>
      <Redirect method="POST">WEBHOOK?FlowEvent=noAudio</Redirect>
    </Response>

  Twilio skips the action for an empty recording and follows the
  ``<Redirect>`` → ``noAudio``. An action with ``CallStatus=completed`` (the
  caller hung up, usually after leaving the message) → ``hangup``; an action
  without ``RecordingUrl`` or with ``RecordingDuration`` 0 → ``noAudio``;
  otherwise ``recordingComplete``.

``enqueue-call`` → ``callComplete`` | ``failedToEnqueue`` | ``callFailure``::

    <Response><Enqueue action="WEBHOOK?FlowEvent=callComplete" method="POST" waitUrl=".." waitUrlMethod="GET"
                       workflowSid="WW…"><Task priority="5" timeout="200">{task_attributes}</Task></Enqueue>
    </Response>                  (a named queue instead: <Enqueue action method waitUrl…>queue_name</Enqueue>)

  ``workflow_sid`` (TaskRouter) wins over ``queue_name`` when both render
  non-empty; ``task_attributes`` (a JSON string, Liquid-rendered, passed on as
  is), ``priority`` and ``timeout`` (whole numbers) only apply to a workflow
  and go into ``<Task>`` (``{}`` when only priority/timeout are set; no
  ``<Task>`` when none is). ``waitUrlMethod`` only with a ``wait_url``.
  Neither a queue nor a workflow → ``failedToEnqueue`` at once, no TwiML.
  Twilio posts the action when the call leaves the queue; its ``QueueResult``
  picks the transition (``QUEUE_RESULTS``): ``bridged``,
  ``bridging-in-process``, ``redirected-from-bridged``, ``hangup``, ``leave``,
  ``redirected`` → ``callComplete``; ``queue-full`` → ``failedToEnqueue``;
  ``error``, ``system-error`` and any value Twilio does not document →
  ``callFailure``. The action's parameters (``QueueResult``, ``QueueSid``,
  ``QueueTime``, ``CallSid``…) land in ``widgets.NAME``. A final call status
  callback that arrives before the action (the caller hung up) takes
  ``callComplete`` with that callback's parameters.

``add-twiml-redirect`` → ``return`` | ``timeout`` | ``fail``::

    <Response><Redirect method="POST|GET">rendered url</Redirect></Response>

  * ``url`` must render to an absolute http(s) URL with a host (query strings
    allowed); anything else — or a template error — takes ``fail`` at once,
    with ``widgets.NAME.error`` saying why. ``method`` is ``POST`` (default) or
    ``GET``; ``timeout`` is a string of whole seconds 0–14400 (default 14400);
    another method or timeout also takes ``fail``.
  * Otherwise the execution waits: a request to the flow webhook with
    ``FlowEvent=return`` resumes on ``return`` and every other query or form
    parameter of that request lands in ``widgets.NAME.<param>``. A durable
    timer (the scheduler) fires after ``timeout`` seconds and takes
    ``timeout``; for a voice call the flow has then lost the call for good
    (Studio: a timed-out call cannot be regained), so a later TwiML widget ends
    the execution (``end_reason`` ``call_ended``) and a late return gets an
    empty ``<Response/>``.
  * ``timeout`` ``"0"`` means *do not wait*: the webhook is still answered with
    the ``<Redirect>``, and the ``timeout`` transition is taken at once in the
    same step run (non-TwiML widgets after it run; for a voice call a later
    TwiML widget ends the execution, as after any timeout). A later
    ``FlowEvent=return`` is ignored.
  * Messaging: the same ``<Redirect>`` answers a message webhook (Messaging
    TwiML has the verb too), and the return works the same way. In a
    REST-started execution no webhook waits for the TwiML, so the widget just
    waits for its return or timer.

A call-only widget (everything above except ``add-twiml-redirect``) reached by
an execution without a live call (a message or REST execution) ends it with
81002 and a step saying so; reached after the caller hung up or after a
TwiML Redirect timed out, it ends the execution without a step (Studio's
"Stop Execution"), ``end_reason`` ``call_ended``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from shared.flow import State
from shared.liquid_render import TemplateError
from shared.messages import CancelTimer, Event, ScheduleTimer, TimerFired, WebhookReceived

from ..sprint import Next, Park, Sprint
from ..state import Wait
from .http import valid_url

__all__ = [
    "FINAL_CALL_STATUSES",
    "MAX_REDIRECT_TIMEOUT",
    "add_twiml_redirect",
    "connect_call_to",
    "enqueue_call",
    "flow_event_url",
    "gather_input_on_call",
    "needs_call",
    "park_twiml",
    "record_voicemail",
    "resume_connect_call_to",
    "resume_enqueue_call",
    "resume_gather",
    "resume_record_voicemail",
    "resume_redirect",
    "resume_say_play",
    "say_play",
    "webhook_url",
]

MAX_REDIRECT_TIMEOUT = 14400
DEFAULT_REDIRECT_TIMEOUT = 14400
FINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
NOUNS = ("number", "client", "sip", "sim", "conference")


def webhook_url(sprint: Sprint) -> str:
    """The flow webhook on the public base URL (``WEBHOOK`` above)."""
    settings = sprint.env.settings
    return f"{settings.public_base_url.rstrip('/')}/v1/Accounts/{settings.account_sid}/Flows/{sprint.state.flow_sid}"


def flow_event_url(sprint: Sprint, event: str) -> str:
    """The flow webhook on the public base URL, naming the transition the next request resumes."""
    return f"{webhook_url(sprint)}?{urlencode({'FlowEvent': event})}"


# -- helpers -------------------------------------------------------------------------------------


def _int(value: Any, default: int, low: int, high: int) -> int:
    """An integer property clamped to Studio's range; unusable values fall back to the default."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return default
    return max(low, min(high, number))


def _text(sprint: Sprint, props: Any, key: str) -> str:
    value = props.get(key)
    return sprint.render(value).strip() if value not in (None, "") else ""


def _attrs(**values: Any) -> dict[str, Any]:
    """Only the attributes that are set (twilio.twiml would print ``None`` otherwise)."""
    return {k: v for k, v in values.items() if v not in (None, "")}


def park_twiml(sprint: Sprint, widget: State, events: tuple[str, ...], response: VoiceResponse) -> Park:
    """Wait on a webhook naming one of ``events``; the live call is told ``response`` meanwhile."""
    wait = Wait(widget=widget.name, kind="webhook", token=sprint.token(), events=events, twiml=str(response),
                started_at=sprint.env.now)
    return Park(wait, twiml=wait.twiml)


def needs_call(sprint: Sprint, widget: State) -> Park | None:
    """A call-only widget without a call to talk to ends the execution; returns the placeholder result."""
    state = sprint.state
    if not state.call_sid:
        message = f"{widget.type} needs a live call; this execution ({state.channel}) has none"
        sprint.limit_step(widget, 81002, message)
        sprint.end("failed", 81002, message)
    elif state.call_released:
        sprint.end("call_ended")
    else:
        return None
    return Park(Wait(widget=widget.name, kind="ended", token=sprint.token()))


def _prompt(sprint: Sprint, props: Any, parent: VoiceResponse | Gather) -> None:
    """The Say / Play / digits a widget speaks, rendered, with its voice, language and loop."""
    loop = _int(props.get("loop"), 1, 1, 99)
    say, play = _text(sprint, props, "say"), _text(sprint, props, "play")
    if say:
        parent.say(say, **_attrs(voice=_text(sprint, props, "voice"), language=_text(sprint, props, "language"),
                                 loop=loop))
    elif play:
        parent.play(play, loop=loop)
    elif isinstance(parent, VoiceResponse) and _text(sprint, props, "digits"):
        parent.play(digits=_text(sprint, props, "digits"))


def _outputs(event: WebhookReceived) -> dict[str, Any]:
    params = event.params if isinstance(event.params, dict) else {}
    return {k: v for k, v in params.items() if k != "FlowEvent"}


def _call_over(event: WebhookReceived) -> bool:
    params = event.params if isinstance(event.params, dict) else {}
    return event.flow_event == "hangup" or str(params.get("CallStatus", "")) in FINAL_CALL_STATUSES


# -- say-play ------------------------------------------------------------------------------------


def say_play(sprint: Sprint, widget: State) -> Next | Park:
    stopped = needs_call(sprint, widget)
    if stopped:
        return stopped
    response = VoiceResponse()
    _prompt(sprint, widget.properties, response)
    response.redirect(flow_event_url(sprint, "audioComplete"), method="POST")
    return park_twiml(sprint, widget, ("audioComplete",), response)


def resume_say_play(sprint: Sprint, widget: State, event: Event) -> Next | None:
    if not isinstance(event, WebhookReceived) or event.flow_event != "audioComplete":
        return None
    return Next("audioComplete", _outputs(event))


# -- gather-input-on-call ------------------------------------------------------------------------


def gather_input_on_call(sprint: Sprint, widget: State) -> Next | Park:
    stopped = needs_call(sprint, widget)
    if stopped:
        return stopped
    props = widget.properties
    speech = bool(widget.next_for("speech"))
    attrs = _attrs(
        action=flow_event_url(sprint, "keypress"), method="POST",
        input="dtmf speech" if speech else "dtmf",
        timeout=_int(props.get("timeout"), 5, 1, 30),
        finish_on_key=str(props["finish_on_key"]) if "finish_on_key" in props else "#",
        num_digits=_int(props["number_of_digits"], 0, 1, 99) if props.get("number_of_digits") else None,
    )
    if "finish_on_key" in props and not str(props["finish_on_key"]):
        attrs["finish_on_key"] = ""  # no finish key at all (Twilio: finishOnKey="")
    if speech:
        attrs.update(_attrs(
            language=_text(sprint, props, "gather_language"), speech_timeout=_text(sprint, props, "speech_timeout"),
            speech_model=_text(sprint, props, "speech_model"), hints=_text(sprint, props, "hints"),
            profanity_filter=str(props["profanity_filter"]).lower() if "profanity_filter" in props else None,
        ))
    response = VoiceResponse()
    gather = Gather(**attrs)
    _prompt(sprint, props, gather)
    response.append(gather)
    response.redirect(flow_event_url(sprint, "timeout"), method="POST")
    return park_twiml(sprint, widget, ("keypress", "speech", "timeout"), response)


def resume_gather(sprint: Sprint, widget: State, event: Event) -> Next | None:
    if not isinstance(event, WebhookReceived) or event.flow_event not in ("keypress", "speech", "timeout"):
        return None
    outputs = _outputs(event)
    if event.flow_event == "timeout":
        return Next("timeout", outputs)
    if str(outputs.get("SpeechResult", "")).strip():
        return Next("speech", outputs)
    return Next("keypress", outputs)


# -- connect-call-to -----------------------------------------------------------------------------


def connect_call_to(sprint: Sprint, widget: State) -> Next | Park:
    stopped = needs_call(sprint, widget)
    if stopped:
        return stopped
    props = widget.properties
    caller_id = _text(sprint, props, "caller_id") if "caller_id" in props else sprint.state.contact_address
    record = props.get("record")
    dial = Dial(**_attrs(
        action=flow_event_url(sprint, "callCompleted"), method="POST", caller_id=caller_id,
        timeout=_int(props.get("timeout"), 30, 1, 600) if props.get("timeout") not in (None, "") else None,
        time_limit=_int(props.get("time_limit"), 14400, 1, 14400) if props.get("time_limit") not in (None, "") else None,
        record="record-from-answer" if record is True or str(record).lower() == "true" else None,
    ))
    noun = str(props.get("noun") or "number").lower()
    to = _text(sprint, props, "to")
    if noun == "client":
        dial.client(to)
    elif noun == "sip":
        dial.sip(_text(sprint, props, "sip_endpoint") or to, **_attrs(
            username=_text(sprint, props, "sip_username"), password=_text(sprint, props, "sip_password")))
    elif noun == "sim":
        dial.sim(to)
    elif noun == "conference":
        dial.conference(to)
    else:  # number, or several numbers ringing at once (Studio allows up to 10)
        for number in [n.strip() for n in to.split(",") if n.strip()][:10] or [to]:
            dial.number(number)
    response = VoiceResponse()
    response.append(dial)
    return park_twiml(sprint, widget, ("callCompleted", "hangup"), response)


def resume_connect_call_to(sprint: Sprint, widget: State, event: Event) -> Next | None:
    if not isinstance(event, WebhookReceived) or event.flow_event not in ("callCompleted", "hangup"):
        return None
    return Next("hangup" if _call_over(event) else "callCompleted", _outputs(event))


# -- record-voicemail ----------------------------------------------------------------------------


def record_voicemail(sprint: Sprint, widget: State) -> Next | Park:
    stopped = needs_call(sprint, widget)
    if stopped:
        return stopped
    props = widget.properties
    transcribe = props.get("transcribe")
    attrs = _attrs(
        action=flow_event_url(sprint, "recordingComplete"), method="POST",
        timeout=_int(props.get("timeout"), 5, 0, 600) if props.get("timeout") not in (None, "") else None,
        finish_on_key=_text(sprint, props, "finish_on_key"),
        max_length=_int(props.get("max_length"), 3600, 1, 14400) if props.get("max_length") not in (None, "") else None,
        play_beep=str(props["play_beep"]).lower() if "play_beep" in props else None,
        trim=_text(sprint, props, "trim"),
        transcribe="true" if transcribe is True or str(transcribe).lower() == "true" else None,
        transcribe_callback=_text(sprint, props, "transcription_callback_url"),
        recording_status_callback=_text(sprint, props, "recording_status_callback_url"),
    )
    response = VoiceResponse()
    response.record(**attrs)
    response.redirect(flow_event_url(sprint, "noAudio"), method="POST")
    return park_twiml(sprint, widget, ("recordingComplete", "noAudio", "hangup"), response)


def resume_record_voicemail(sprint: Sprint, widget: State, event: Event) -> Next | None:
    if not isinstance(event, WebhookReceived) or event.flow_event not in ("recordingComplete", "noAudio", "hangup"):
        return None
    outputs = _outputs(event)
    if _call_over(event):
        return Next("hangup", outputs)
    empty = not outputs.get("RecordingUrl") or str(outputs.get("RecordingDuration", "")).strip() == "0"
    if event.flow_event == "noAudio" or empty:
        return Next("noAudio", outputs)
    return Next("recordingComplete", outputs)


# -- enqueue-call --------------------------------------------------------------------------------

#: The ``<Enqueue>`` action's ``QueueResult`` (Twilio's documented values) → Studio's transition.
QUEUE_RESULTS = {
    "bridged": "callComplete",  # dequeued and connected; the action comes once that leg is over
    "bridging-in-process": "callComplete",
    "redirected-from-bridged": "callComplete",
    "hangup": "callComplete",  # the caller hung up while waiting
    "leave": "callComplete",  # <Leave> in the wait TwiML
    "redirected": "callComplete",  # moved out of the queue by the REST API
    "queue-full": "failedToEnqueue",
    "error": "callFailure",  # bad TwiML in <Enqueue> or the waitUrl document
    "system-error": "callFailure",
}
UNKNOWN_QUEUE_RESULT = "callFailure"


def _whole(sprint: Sprint, props: Any, key: str) -> int | None:
    text = _text(sprint, props, key)
    return int(text) if text.isdigit() else None


def enqueue_call(sprint: Sprint, widget: State) -> Next | Park:
    stopped = needs_call(sprint, widget)
    if stopped:
        return stopped
    props = widget.properties
    workflow, queue = _text(sprint, props, "workflow_sid"), _text(sprint, props, "queue_name")
    if not (workflow or queue):
        return Next("failedToEnqueue", {"error": "neither queue_name nor workflow_sid is set (or both rendered "
                                                 "empty); the call was not enqueued"})
    wait_url = _text(sprint, props, "wait_url")
    response = VoiceResponse()
    enqueue = response.enqueue(None if workflow else queue, **_attrs(
        action=flow_event_url(sprint, "callComplete"), method="POST", wait_url=wait_url,
        wait_url_method=_text(sprint, props, "wait_url_method").upper() if wait_url else None,
        workflow_sid=workflow))
    if workflow:
        attributes = _text(sprint, props, "task_attributes")
        priority, timeout = _whole(sprint, props, "priority"), _whole(sprint, props, "timeout")
        if attributes or priority is not None or timeout is not None:
            enqueue.task(attributes or "{}", **_attrs(priority=priority, timeout=timeout))
    return park_twiml(sprint, widget, ("callComplete", "hangup"), response)


def resume_enqueue_call(sprint: Sprint, widget: State, event: Event) -> Next | None:
    if not isinstance(event, WebhookReceived) or event.flow_event not in ("callComplete", "hangup"):
        return None
    outputs = _outputs(event)
    result = str(outputs.get("QueueResult", "")).strip().lower()
    if not result and event.flow_event == "hangup":
        return Next("callComplete", outputs)  # the call ended (status callback) before the action came
    return Next(QUEUE_RESULTS.get(result, UNKNOWN_QUEUE_RESULT), outputs)


# -- add-twiml-redirect --------------------------------------------------------------------------


def _redirect_settings(sprint: Sprint, props: Any) -> tuple[str, str, int] | str:
    """``(url, method, timeout)`` or the reason the widget takes ``fail``."""
    try:
        url = sprint.render(props.get("url", "")).strip()
        method = sprint.render(props.get("method") or "POST").strip().upper() or "POST"
        raw_timeout = props.get("timeout")
        timeout_text = sprint.render(raw_timeout).strip() if raw_timeout not in (None, "") else ""
    except TemplateError as exc:
        return f"81018: {exc}"
    if not valid_url(url):
        return f"the URL {url!r} is not a valid absolute http(s) URL"
    if method not in ("GET", "POST"):
        return f"method must be GET or POST, got {method!r}"
    if not timeout_text:
        return url, method, DEFAULT_REDIRECT_TIMEOUT
    if not timeout_text.isdigit() or int(timeout_text) > MAX_REDIRECT_TIMEOUT:
        return f"timeout must be whole seconds from 0 to {MAX_REDIRECT_TIMEOUT}, got {timeout_text!r}"
    return url, method, int(timeout_text)


def add_twiml_redirect(sprint: Sprint, widget: State) -> Next | Park:
    state = sprint.state
    if state.call_sid and state.call_released:
        sprint.end("call_ended")
        return Park(Wait(widget=widget.name, kind="ended", token=sprint.token()))
    settings = _redirect_settings(sprint, widget.properties)
    if isinstance(settings, str):
        return Next("fail", {"error": settings})
    url, method, timeout = settings
    response = VoiceResponse()  # a <Redirect> document is the same for Voice and Messaging
    response.redirect(url, method=method)
    twiml = str(response)
    if timeout == 0:
        # Do not wait: hand the call (or message) over and go on with ``timeout`` now.
        sprint.twiml = twiml
        if state.call_sid:
            state.call_released = True
        return Next("timeout", {})
    token = sprint.token()
    timer_id = sprint.derived("TM", token)
    wait = Wait(widget=widget.name, kind="webhook", token=token, events=("return",), timer_id=timer_id,
                twiml=twiml, started_at=sprint.env.now, data={"url": url, "method": method, "timeout": timeout})
    timer = ScheduleTimer(timer_id, state.sid, state.route, token, sprint.env.now + timeout)
    return Park(wait, (timer,), twiml=twiml)


def resume_redirect(sprint: Sprint, widget: State, event: Event) -> Next | None:
    wait = sprint.state.wait
    if isinstance(event, TimerFired):
        if sprint.state.call_sid:
            sprint.state.call_released = True  # a timed-out call is never regained
        return Next("timeout", {})
    if not isinstance(event, WebhookReceived) or event.flow_event != "return":
        return None
    if wait is not None and wait.timer_id:
        sprint.commands.append(CancelTimer(wait.timer_id))
    return Next("return", _outputs(event))
