"""Property-based fuzzing of the ingress over real HTTP: REST parameters, flow definitions, webhook form bodies.

A fixed budget per target (``max_examples``, derandomized): every request gets an answer below 500, and every
rejection carries Twilio's error body with the specific code (20001 bad parameter, 81022 invalid definition,
20404 not found, 20409 conflict, 20413 too large…). Signed webhook bodies of any shape get TwiML or a 4xx.
The cluster keeps working afterwards (the last test runs a flow end to end).
"""

from __future__ import annotations

import json
import uuid

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from devtools.cluster import Cluster
from shared.settings import Settings
from tests.conftest import FIXTURES
from tests.unit.fuzz.test_fuzz_pure import json_values, mutated_flows

BUDGET = settings(max_examples=120, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                         HealthCheck.data_too_large])
CODES = {20001, 20003, 20404, 20409, 20413, 81021, 81022}
TRIGGER_ONLY = {"description": "fuzz", "initial_state": "Trigger", "flags": {"allow_concurrent_calls": True},
                "states": [{"name": "Trigger", "type": "trigger", "properties": {},
                            "transitions": [{"event": "incomingMessage"}, {"event": "incomingCall"},
                                            {"event": "incomingRequest"}]}]}

texts = st.text(max_size=40) | st.sampled_from(["", " ", "0", "-1", "1001", "1e9", "null", "[]", "{}", "PA", "PB",
                                                 "PAbm9wZQ", "active", "ended", "2024-13-45T99:99:99Z", "\x00",
                                                 "published", "draft", "+15551234567", "FN" + "0" * 32])


class Client:
    def __init__(self, base: str, settings: Settings) -> None:
        self.base = base
        self.http = requests.Session()
        self.http.auth = (settings.account_sid, settings.auth_token)
        self.validator = RequestValidator(settings.auth_token)
        self.settings = settings

    def check(self, response: requests.Response) -> requests.Response:
        assert response.status_code < 500, (response.request.method, response.request.url, response.text[:500])
        if response.status_code >= 400 and response.headers.get("Content-Type", "").startswith("application/json"):
            body = response.json()
            assert body.get("code") in CODES and body.get("status") == response.status_code, body
            assert isinstance(body.get("message"), str) and body["message"], body
        return response


@pytest.fixture(scope="module")
def client(cluster: Cluster) -> Client:
    return Client(cluster.ingress_url, Settings.from_env(cluster.env))


@pytest.fixture(scope="module")
def flow_sid(client: Client) -> str:
    r = client.check(client.http.post(f"{client.base}/v2/Flows", data={
        "FriendlyName": "fuzz", "Status": "published", "Definition": json.dumps(TRIGGER_ONLY)}))
    assert r.status_code == 201
    return str(r.json()["sid"])


@BUDGET
@given(name=texts, status=texts, definition=json_values.map(json.dumps) | mutated_flows().map(json.dumps) | texts,
       message=texts)
def test_creating_a_flow_from_any_form_is_201_or_a_specific_4xx(
        client: Client, name: str, status: str, definition: str, message: str) -> None:
    r = client.check(client.http.post(f"{client.base}/v2/Flows", data={
        "FriendlyName": name, "Status": status, "Definition": definition, "CommitMessage": message}))
    assert r.status_code in (201, 400), r.text
    if r.status_code == 201:
        client.check(client.http.delete(f"{client.base}/v2/Flows/{r.json()['sid']}"))


@BUDGET
@given(definition=json_values.map(json.dumps) | mutated_flows().map(json.dumps) | texts)
def test_validating_any_definition_is_valid_or_81022(client: Client, definition: str) -> None:
    r = client.check(client.http.post(f"{client.base}/v2/Flows/Validate", data={
        "FriendlyName": "v", "Status": "draft", "Definition": definition}))
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert r.json()["code"] in (20001, 81022)


@BUDGET
@given(params=st.dictionaries(st.sampled_from(["PageSize", "Page", "PageToken", "Status", "DateCreatedFrom",
                                               "DateCreatedTo", "status"]), texts, max_size=5))
def test_listing_executions_with_any_query_is_200_or_20001(client: Client, flow_sid: str, params: dict[str, str]) -> None:
    r = client.check(client.http.get(f"{client.base}/v2/Flows/{flow_sid}/Executions", params=params))
    assert r.status_code in (200, 400), r.text


@BUDGET
@given(to=texts, from_=texts, parameters=json_values.map(json.dumps) | texts)
def test_starting_an_execution_with_any_form_is_201_or_a_specific_4xx(
        client: Client, flow_sid: str, to: str, from_: str, parameters: str) -> None:
    r = client.check(client.http.post(f"{client.base}/v2/Flows/{flow_sid}/Executions",
                                      data={"To": to, "From": from_, "Parameters": parameters}))
    assert r.status_code in (201, 400, 409), r.text


@BUDGET
@given(path=st.lists(texts.filter(lambda t: "/" not in t and t not in ("", ".", "..")), min_size=1, max_size=4))
def test_any_resource_path_under_a_flow_is_answered_below_500(client: Client, flow_sid: str, path: list[str]) -> None:
    names = ["Executions", "Steps", "Context", "Revisions"]
    url = f"{client.base}/v2/Flows/{flow_sid}/" + "/".join(
        part if i % 2 else names[i // 2 % len(names)] for i, part in enumerate(path))
    client.check(client.http.get(url))


@BUDGET
@given(form=st.dictionaries(st.sampled_from(["From", "To", "Body", "CallSid", "MessageSid", "CallStatus",
                                             "FlowEvent", "Digits", "AccountSid", "KeepAlive"]) | st.text(max_size=10),
                            texts, max_size=8))
def test_a_signed_webhook_with_any_form_body_gets_twiml_or_a_4xx(client: Client, flow_sid: str,
                                                               form: dict[str, str]) -> None:
    url = f"{client.settings.public_base_url}/v1/Accounts/{client.settings.account_sid}/Flows/{flow_sid}"
    form = {k: v.replace("\x00", "") for k, v in form.items() if k and "\x00" not in k}
    signature = client.validator.compute_signature(url, form)
    r = client.check(requests.post(f"{client.base}/v1/Accounts/{client.settings.account_sid}/Flows/{flow_sid}",
                                   data=form, headers={"X-Twilio-Signature": signature}, timeout=30))
    if r.status_code == 200:
        assert r.text.startswith("<?xml") and "<Response" in r.text


def test_the_cluster_still_runs_a_flow_after_the_fuzzing(client: Client) -> None:
    definition = json.loads((FIXTURES / "appointments_flow.json").read_text())
    r = client.check(client.http.post(f"{client.base}/v2/Flows", data={
        "FriendlyName": "after fuzz", "Status": "published", "Definition": json.dumps(definition)}))
    sid = r.json()["sid"]
    started = client.check(client.http.post(f"{client.base}/v2/Flows/{sid}/Executions", data={
        "To": f"+1555{uuid.uuid4().int % 10**7:07d}", "From": "+15550001111", "Parameters": '{"event_type": "NONE"}'}))
    assert started.status_code == 201 and started.json()["status"] == "ended"


async def test_a_poison_event_never_stalls_its_partition(client: Client, cluster: Cluster) -> None:
    """Undecodable bytes, a message of the wrong kind and an event for a flow that does not exist, all on the
    partition of a contact's route: the processor skips them (and counts them), the contact's execution runs."""
    from aiokafka import AIOKafkaProducer

    from shared.messages import FlowRecord, StartExecution, encode

    definition = json.loads((FIXTURES / "appointments_flow.json").read_text())
    sid = client.check(client.http.post(f"{client.base}/v2/Flows", data={
        "FriendlyName": "poison", "Status": "published", "Definition": json.dumps(definition)})).json()["sid"]
    contact = f"+1555{uuid.uuid4().int % 10**7:07d}"
    route = f"{sid}:{contact}".encode()
    producer = AIOKafkaProducer(bootstrap_servers=client.settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        topic = client.settings.topic("events")
        await producer.send_and_wait(topic, b"\xff\x00not a message", key=route)
        wrong = FlowRecord(sid=sid, revision=9, friendly_name="x", status="draft", definition={}, commit_message="",
                           valid=False, errors=[], warnings=[], date_created=0.0, date_updated=0.0)
        await producer.send_and_wait(topic, encode(wrong), key=route)
        ghost = StartExecution(execution_sid="FN" + uuid.uuid4().hex, flow_sid="FW" + "0" * 32, revision=1,
                               route=route.decode(), contact_address=contact, channel_address="+15550001111",
                               flow_data={}, created_at=0.0, initiated_by="RQ" + "0" * 32)
        await producer.send_and_wait(topic, encode(ghost), key=route)
    finally:
        await producer.stop()
    started = client.check(client.http.post(f"{client.base}/v2/Flows/{sid}/Executions", data={
        "To": contact, "From": "+15550001111", "Parameters": '{"event_type": "NONE"}'}))
    assert started.status_code == 201 and started.json()["status"] == "ended"
