"""Real Studio flows (../shared/conformance/flows) whose widgets are all of this engine's messaging/logic set —
trigger, Set Variables, Split Based On…, Make HTTP Request, Run Function, Send Message, Send & Wait For Reply —
run to an end over the real broker, driven like Studio would drive them.

Their HTTP and Function URLs are rewritten to a local server (one path per widget name), Twilio's Messages
API is played by ``messages_api`` and the contact's replies are signed inbound SMS from the simulator. Each
test asserts the exact path of steps the flow takes.

Flows 01 and 03 are Subflows (their trigger only continues on ``incomingParent``). They run on their own
with the trigger's ``incomingRequest`` wired to the ``incomingParent`` target instead (so
``trigger.parent.parameters.*`` renders empty), and as the subflows of their parents 02 and 04 through Run
Subflow: the subflow is imported first and the parent's ``flow_sid`` (Twilio's ``FW5012…``) is rewritten to
the sid it got.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from devtools.simulator import Simulator
from tests.conftest import CONFORMANCE, require_conformance
from tests.integration.messages_api import MessagesApi
from tests.integration.widget_flows import context, only_execution, path, phone


@pytest.fixture(autouse=True)
def _needs_the_corpus() -> None:
    """Every test here runs a real Studio export: skipped (one line) when the corpus is not beside the checkout."""
    require_conformance()


CHANNEL = "+15559990000"
Responder = Callable[[dict[str, Any]], Any]


def load(prefix: str) -> dict[str, Any]:
    (file,) = CONFORMANCE.glob(f"{prefix}-*.json")
    return json.loads(file.read_text())  # type: ignore[no-any-return]


def localise(definition: dict[str, Any], base: str) -> dict[str, Any]:
    """Point every Make HTTP Request / Run Function at ``{base}/{widget name}``."""
    flow = copy.deepcopy(definition)
    for state in flow["states"]:
        if state["type"] in ("make-http-request", "run-function"):
            state["properties"]["url"] = f"{base}/{state['name']}"
    return flow


class Functions:
    """The flows' Functions and webhooks: answers per widget name, and what each received."""

    def __init__(self, answers: dict[str, Responder]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{name}", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        raw = await request.read()
        if request.content_type == "application/json":
            received: dict[str, Any] = {"json": orjson.loads(raw)}
        else:
            received = dict(await request.post()) | dict(request.query)
        self.calls.append((name, received))
        answer = self.answers.get(name, lambda _: {"ok": True})(received)
        return web.json_response(answer)

    def called(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture
async def sim(cluster: Any, settings: Any) -> Any:
    async with aiohttp.ClientSession() as session:
        yield Simulator(cluster.ingress_url, settings.account_sid, settings.auth_token, session)


class Conversation:
    """One contact talking to one flow: inbound SMS out, the flow's messages in."""

    def __init__(self, api: Any, messages: MessagesApi, sim: Simulator, flow_sid: str) -> None:
        self.api, self.messages, self.sim, self.flow_sid = api, messages, sim, flow_sid
        self.contact = phone()
        self.read = 0

    async def text(self, body: str) -> None:
        transcript = await self.sim.message(self.flow_sid, body, from_=self.contact, to=CHANNEL)
        assert not transcript.of("error"), str(transcript)

    async def expect(self, fragment: str, timeout: float = 20) -> str:
        """The next message the flow sends that contains ``fragment`` (earlier ones are skipped)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            sent = self.messages.messages(self.contact)
            for index in range(self.read, len(sent)):
                if fragment in sent[index]["body"]:
                    self.read = index + 1
                    return str(sent[index]["body"])
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no message containing {fragment!r}; sent: {[m['body'] for m in sent]}")
            await asyncio.sleep(0.05)

    async def reply_to(self, fragment: str, answer: str) -> None:
        await self.expect(fragment)
        await self.text(answer)

    def bodies(self) -> list[str]:
        return [m["body"] for m in self.messages.messages(self.contact)]


async def setup(api: Any, http_server: Any, prefix: str, answers: dict[str, Responder] | None = None,
                rewire_parent: bool = False, subflow: str = "") -> tuple[str, Functions]:
    """Import flow ``prefix`` (after ``subflow``, whose sid its Run Subflow widgets then name) on local URLs."""
    functions = Functions(answers or {})
    base = await http_server(functions.app)
    definition = localise(load(prefix), base)
    if subflow:
        subflow_sid = await api.create_flow(localise(load(subflow), base), name=subflow)
        for state in definition["states"]:
            if state["type"] == "run-subflow":
                state["properties"]["flow_sid"] = subflow_sid
    if rewire_parent:
        trigger = definition["states"][0]
        target = next(t["next"] for t in trigger["transitions"] if t["event"] == "incomingParent")
        for transition in trigger["transitions"]:
            if transition["event"] == "incomingRequest":
                transition["next"] = target
    return await api.create_flow(definition, name=prefix), functions


async def ended_path(api: Any, flow_sid: str, sid: str) -> list[tuple[str, str, str]]:
    await api.wait_ended(flow_sid, sid, timeout=40)
    return path(await api.steps(flow_sid, sid))


# -- the flows ---------------------------------------------------------------------------------------


async def test_05_sms_forwarding_posts_the_whole_message_as_json(
        api: Any, http_server: Any, messages_api: MessagesApi, sim: Simulator) -> None:
    flow_sid, functions = await setup(api, http_server, "05")
    talk = Conversation(api, messages_api, sim, flow_sid)
    await talk.text("forward me")
    execution = await only_execution(api, flow_sid)
    assert await ended_path(api, flow_sid, execution["sid"]) == [
        ("incomingMessage", "Trigger", "http_1"), ("success", "http_1", "Ended")]
    ((name, received),) = functions.calls
    assert name == "http_1" and received["json"]["url"] == "<<INSERT YOUR URL ENDPOINT>>"
    assert received["json"]["payload"]["Body"] == "forward me"
    assert received["json"]["payload"]["From"] == talk.contact


async def test_08_eppo_reminders_runs_its_experiment_assignment_to_an_end(
        api: Any, http_server: Any, messages_api: MessagesApi, sim: Simulator) -> None:
    flow_sid, functions = await setup(api, http_server, "08", {"get_assignment": lambda _: {"variation": "newMessage"}})
    created = await api.start(flow_sid, to=phone(), from_=CHANNEL, params={"time": "10:00", "loc": "Main St"})
    # The published flow's split reads widgets.get_assignment_express (a widget it does not have): noMatch ends it.
    assert await ended_path(api, flow_sid, created["sid"]) == [
        ("incomingRequest", "Trigger", "set_experiment_key"),
        ("next", "set_experiment_key", "get_assignment"),
        ("success", "get_assignment", "split_based_on_assigned_variation"),
        ("noMatch", "split_based_on_assigned_variation", "Ended"),
    ]
    assert functions.called() == ["get_assignment"]
    assert functions.calls[0][1] == {"experimentKey": "sms-messages", "userID": ""}


async def test_10_pride_astrology_answers_a_sign_and_a_yes(
        api: Any, http_server: Any, messages_api: MessagesApi, sim: Simulator) -> None:
    flow_sid, functions = await setup(api, http_server, "10", {
        "get_horoscope": lambda r: {"description": f"Great day, {r['sign']}"},
        "get_compatibility": lambda r: {"list": "aries,leo", "description": "fire"},
        "get_celebrity_match": lambda r: {"name": "Kate", "bar": "Cubbyhole"},
    })
    talk = Conversation(api, messages_api, sim, flow_sid)
    await talk.text("hi")
    await talk.reply_to("tell us your sign", "Leo")
    await talk.reply_to("celebrity match", "yes please")
    execution = await only_execution(api, flow_sid)
    assert await ended_path(api, flow_sid, execution["sid"]) == [
        ("incomingMessage", "Trigger", "ask_sign"),
        ("incomingMessage", "ask_sign", "split_sign"),
        ("match", "split_sign", "send_waiting"),
        ("sent", "send_waiting", "get_horoscope"),
        ("success", "get_horoscope", "get_compatibility"),
        ("success", "get_compatibility", "send_horoscope_and_compatibility"),
        ("sent", "send_horoscope_and_compatibility", "send_ask_to_see_match"),
        ("incomingMessage", "send_ask_to_see_match", "split_see_match"),
        ("match", "split_see_match", "get_celebrity_match"),
        ("success", "get_celebrity_match", "send_match"),
        ("sent", "send_match", "send_lbp_info"),
        ("sent", "send_lbp_info", "Ended"),
    ]
    assert "Oh you're a Leo?" in talk.bodies()[1] and "Great day, Leo" in talk.bodies()[2]
    assert "Kate" in talk.bodies()[4]
    assert functions.called() == ["get_horoscope", "get_compatibility", "get_celebrity_match"]


def dialogflow(received: dict[str, Any]) -> dict[str, Any]:
    done = received.get("utterance") == "bye"
    return {"intent": {"displayName": "VaccineFAQ.End Session" if done else "VaccineFAQ.When"},
            "session_id": "session-1", "fulfillmentText": "Goodbye" if done else "Vaccines are available now."}


async def test_24_covid_faq_bot_answers_until_the_end_session_intent(
        api: Any, http_server: Any, messages_api: MessagesApi, sim: Simulator) -> None:
    flow_sid, functions = await setup(api, http_server, "24", {"DialogflowDetectIntent": dialogflow})
    talk = Conversation(api, messages_api, sim, flow_sid)
    await talk.text("When can I get vaccinated?")
    await talk.reply_to("Vaccines are available now.", "bye")
    await talk.expect("Thank you for using Vaccine FAQ bot!")
    execution = await only_execution(api, flow_sid)
    assert await ended_path(api, flow_sid, execution["sid"]) == [
        ("incomingMessage", "Trigger", "SetUtteranceVariable"),
        ("next", "SetUtteranceVariable", "DialogflowDetectIntent"),
        ("success", "DialogflowDetectIntent", "SetDialogflowSessionId"),
        ("next", "SetDialogflowSessionId", "Check_EndSession"),
        ("noMatch", "Check_EndSession", "SendWaitDialogflowAnswer"),
        ("incomingMessage", "SendWaitDialogflowAnswer", "ResetUtteranceVariable"),
        ("next", "ResetUtteranceVariable", "DialogflowDetectIntent"),
        ("success", "DialogflowDetectIntent", "SetDialogflowSessionId"),
        ("next", "SetDialogflowSessionId", "Check_EndSession"),
        ("match", "Check_EndSession", "SendFinalMessage"),
        ("sent", "SendFinalMessage", "Ended"),
    ]
    utterances = [received["utterance"] for name, received in functions.calls]
    assert utterances == ["When can I get vaccinated?", "bye"]
    # The session id travels from the first run's parsed through Set Variables into the second run.
    assert functions.calls[1][1]["dialogflow_session_id"] == "session-1"


@pytest.mark.parametrize("event_type,replies,expected", [
    pytest.param("REMIND", [("This is a reminder", "CONFIRM APPT")], [
        ("incomingRequest", "Trigger", "set_global_variables"),
        ("next", "set_global_variables", "split_on_event_type"),
        ("match", "split_on_event_type", "save-remind"),
        ("success", "save-remind", "send_remind"),
        ("incomingMessage", "send_remind", "split_remind_reply"),
        ("match", "split_remind_reply", "confirm_remind"),
        ("success", "confirm_remind", "Ended")], id="a reminder confirmed by reply"),
    pytest.param("BOOKED", [("Your appointment with Dr.", "cancel appt")], [
        ("incomingRequest", "Trigger", "set_global_variables"),
        ("next", "set_global_variables", "split_on_event_type"),
        ("match", "split_on_event_type", "save-booked"),
        ("success", "save-booked", "send_booked"),
        ("incomingMessage", "send_booked", "split_booked"),
        ("match", "split_booked", "confirm_booked"),
        ("success", "confirm_booked", "Ended")], id="a booking cancelled by reply"),
    pytest.param("OPTED-IN", [], [
        ("incomingRequest", "Trigger", "set_global_variables"),
        ("next", "set_global_variables", "split_on_event_type"),
        ("match", "split_on_event_type", "send_optedin"),
        ("sent", "send_optedin", "Ended")], id="an opt-in notice"),
])
async def test_25_patient_appointment_management(
        api: Any, http_server: Any, messages_api: MessagesApi, sim: Simulator, event_type: str,
        replies: list[tuple[str, str]], expected: list[tuple[str, str, str]]) -> None:
    flow_sid, functions = await setup(api, http_server, "25")
    talk = Conversation(api, messages_api, sim, flow_sid)
    data = {"event_type": event_type, "patient_first_name": "Ann", "provider_last_name": "Who",
            "appointment_location": "Main St", "appointment_date": "2026-12-01", "appointment_time": "10:00",
            "appointment_id": "A1", "patient_id": "P1"}
    created = await api.start(flow_sid, to=talk.contact, from_=CHANNEL, params=data)
    for fragment, answer in replies:
        await talk.reply_to(fragment, answer)
    assert await ended_path(api, flow_sid, created["sid"]) == expected
    assert talk.bodies()[0].startswith("Hello, Ann.")
    if functions.calls and functions.calls[0][0].startswith("save-"):
        appointment = orjson.loads(functions.calls[0][1]["appointment"])  # {{flow.data}} renders as JSON
        assert appointment["appointment_id"] == "A1"
    if expected[-1][1].startswith("confirm_"):
        posted = functions.calls[-1][1]["json"]
        assert posted["flow_sid"] == flow_sid and posted["appointment_id"] == "A1"
    variables = (await context(api, flow_sid, created["sid"]))["flow"]["variables"]
    assert variables["CUSTOMER_NAME"] == "YOUR_HEALTH_SYSTEM_NAME"


async def test_26_vaccine_standby_collects_every_answer(
        api: Any, http_server: Any, messages_api: MessagesApi, sim: Simulator) -> None:
    flow_sid, _ = await setup(api, http_server, "26")
    talk = Conversation(api, messages_api, sim, flow_sid)
    await talk.text("hi")
    for fragment, answer in [("get notified", "yes"), ("full name", "Ann Lee"), ("how old", "42"),
                             ("zip code", "02134"), ("essential worker", "NO"), ("work from home", "YES"),
                             ("nursing home", "no"), ("congregate setting", "no"), ("health conditions", "no"),
                             ("SMS or Email", "1"), ("preferred language", "1")]:
        await talk.reply_to(fragment, answer)
    await talk.expect("standby list")
    execution = await only_execution(api, flow_sid)
    steps = await ended_path(api, flow_sid, execution["sid"])
    assert [s[1] for s in steps] == [
        "Trigger", "Welcome", "OptIn", "Name", "Age", "ZipCode", "EssentialWorker", "WorkFromHome", "LongTermCare",
        "CongregateSetting", "HealthCondition", "NotificationPreference", "ValidateNotificationPref",
        "LanguagePreference", "Goodbye"]
    assert steps[-1] == ("sent", "Goodbye", "Ended")
    assert "OK, Ann Lee, how old are you?" in talk.bodies()
    ctx = await context(api, flow_sid, execution["sid"])
    assert ctx["widgets"]["ZipCode"]["inbound"]["Body"] == "02134"


async def test_03_daily_sit_down_child_notices_the_same_answer_twice(
        api: Any, http_server: Any, messages_api: MessagesApi, sim: Simulator) -> None:
    flow_sid, functions = await setup(api, http_server, "03", rewire_parent=True)
    talk = Conversation(api, messages_api, sim, flow_sid)
    created = await api.start(flow_sid, to=talk.contact, from_=CHANNEL)
    await talk.reply_to("what did you do yesterday?", "the report")
    await talk.reply_to("what will you do today?", "The Report ")
    await talk.expect("Why aren’t you done yet?")
    await talk.reply_to("what impediments do you have?", "none")
    assert await ended_path(api, flow_sid, created["sid"]) == [
        ("incomingRequest", "Trigger", "var_name"),
        ("next", "var_name", "yesterday"),
        ("incomingMessage", "yesterday", "today"),
        ("incomingMessage", "today", "condition"),
        ("match", "condition", "same_thing"),
        ("sent", "same_thing", "impediments"),
        ("incomingMessage", "impediments", "var_input"),
        ("next", "var_input", "save_to_airtable"),
        ("success", "save_to_airtable", "Ended"),
    ]
    ((name, saved),) = functions.calls
    assert name == "save_to_airtable" and saved["number"] == talk.contact
    assert (saved["yesterday"], saved["today"], saved["impediments"]) == ("the report", "The Report ", "none")


async def test_01_daily_sit_down_subflow_asks_three_questions_and_saves(
        api: Any, http_server: Any, messages_api: MessagesApi, sim: Simulator) -> None:
    flow_sid, functions = await setup(api, http_server, "01", rewire_parent=True)
    talk = Conversation(api, messages_api, sim, flow_sid)
    created = await api.start(flow_sid, to=talk.contact, from_=CHANNEL)
    await talk.reply_to("what did you do yesterday?", "tests")
    await talk.reply_to("what will you do today?", "more tests")
    await talk.reply_to("what impediments do you have?", "none")
    steps = await ended_path(api, flow_sid, created["sid"])
    assert [s[1] for s in steps] == ["Trigger", "var_name", "yesterday", "today", "impediments", "var_input",
                                     "save_to_airtable"]
    assert steps[-1] == ("success", "save_to_airtable", "Ended")
    assert functions.called() == ["save_to_airtable"]


NAMES = {"validate_caller": lambda _: {"valid": True}, "get_names": lambda r: {"name": f"Ann {r['caller'][-4:]}"}}
#: Flows 02 and 04 up to their Run Subflow widget, the subflow's first question, and from its save onwards.
INTO_SUBFLOW = [
    ("incomingMessage", "Trigger", "validate_caller"), ("success", "validate_caller", "get_names"),
    ("success", "get_names", "ask_questions"), ("incomingParent", "Trigger", "var_name"),
    ("next", "var_name", "yesterday"), ("incomingMessage", "yesterday", "today")]
OUT_OF_SUBFLOW = [
    ("incomingMessage", "impediments", "var_input"), ("next", "var_input", "save_to_airtable"),
    ("success", "save_to_airtable", "Ended"), ("completed", "ask_questions", "end"),
    ("incomingMessage", "end", "press_1")]


QUESTIONS = ("what did you do yesterday?", "what will you do today?", "what impediments do you have?")


def subflow_steps(steps: list[dict[str, Any]], run_subflow: str) -> list[str]:
    """The widgets of the steps that ran inside the subflow started by the ``run_subflow`` widget's step."""
    (parent_step,) = [s["sid"] for s in steps if s["transitioned_from"] == run_subflow]
    return [s["transitioned_from"] for s in steps if s["parent_step_sid"] == parent_step]


async def sit_down(talk: Conversation, asks: str, answers: tuple[str, str, str]) -> str:
    """Text the parent, answer the subflow's three questions (asked with ``asks`` = the name as shown), reply 1."""
    name = f"Ann {talk.contact[-4:]}"
    shown = name.upper() if asks == "upcase" else name
    await talk.text("sit-down")
    for question, answer in zip(QUESTIONS, answers, strict=True):
        await talk.reply_to(f"{shown} {question}", answer)
    await talk.reply_to(f"Thanks, {name} now get back to work.", "1")
    return name


async def test_04_daily_sit_down_parent_runs_its_child_as_a_subflow_and_uses_what_it_returns(
        api: Any, http_server: Any, messages_api: MessagesApi, sim: Simulator) -> None:
    flow_sid, functions = await setup(api, http_server, "04", NAMES, subflow="03")
    talk = Conversation(api, messages_api, sim, flow_sid)
    name = await sit_down(talk, "upcase", ("the report", "the slides", "none"))
    await talk.expect("https://airtable.com/shrgxvKyKIJ9pJItw")
    execution = await only_execution(api, flow_sid)
    await api.wait_ended(flow_sid, execution["sid"], timeout=40)
    steps = await api.steps(flow_sid, execution["sid"])
    assert path(steps) == [
        *INTO_SUBFLOW,
        ("incomingMessage", "today", "condition"),
        ("noMatch", "condition", "impediments"),
        *OUT_OF_SUBFLOW,
        ("match", "press_1", "airtable_link"),
        ("sent", "airtable_link", "Ended"),
    ]
    assert subflow_steps(steps, "ask_questions") == [
        "Trigger", "var_name", "yesterday", "today", "condition", "impediments", "var_input", "save_to_airtable"]
    assert {s["flow_sid"] for s in steps} == {flow_sid}  # one execution, one list of steps
    assert functions.called() == ["validate_caller", "get_names", "save_to_airtable"]
    saved = functions.calls[-1][1]
    assert (saved["name"], saved["number"], saved["yesterday"], saved["today"], saved["impediments"]) == (
        name, talk.contact, "the report", "the slides", "none")
    ctx = await context(api, flow_sid, execution["sid"])
    returned = ctx["widgets"]["ask_questions"]
    assert (returned["name"], returned["today"], returned["number"]) == (name, "the slides", talk.contact)
    assert ctx["flow"]["variables"] == {} and ctx["flow"]["flow_sid"] == flow_sid  # the parent's own again


async def test_02_daily_sit_down_runs_its_subflow_then_waits_on_its_own_last_question(
        api: Any, http_server: Any, messages_api: MessagesApi, sim: Simulator) -> None:
    flow_sid, functions = await setup(api, http_server, "02", NAMES, subflow="01")
    talk = Conversation(api, messages_api, sim, flow_sid)
    name = await sit_down(talk, "as is", ("tests", "more tests", "none"))
    # Its split reads widgets.send_and_reply_1 (a widget it does not have): noMatch asks again, for an hour.
    await talk.expect(f"Thanks, {name} now get back to work.")
    execution = await only_execution(api, flow_sid, ended=False)
    code, body = await api.post(f"/v2/Flows/{flow_sid}/Executions/{execution['sid']}", {"Status": "ended"})
    assert code == 200, body
    await api.wait_ended(flow_sid, execution["sid"])
    steps = await api.steps(flow_sid, execution["sid"])
    assert path(steps) == [
        *INTO_SUBFLOW,
        ("incomingMessage", "today", "impediments"),
        *OUT_OF_SUBFLOW,
        ("noMatch", "press_1", "end"),
    ]
    assert subflow_steps(steps, "ask_questions") == [
        "Trigger", "var_name", "yesterday", "today", "impediments", "var_input", "save_to_airtable"]
    assert functions.called() == ["validate_caller", "get_names", "save_to_airtable"]
    assert (await context(api, flow_sid, execution["sid"]))["widgets"]["ask_questions"]["yesterday"] == "tests"
