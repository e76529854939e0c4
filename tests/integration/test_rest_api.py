"""Studio v2 REST compatibility, proven with the official ``twilio`` client (9.13) against a running cluster.

The client is pointed at the ingress with ``client.studio.base_url = cluster.ingress_url`` (see
../shared/reference/ecosystem.md §4.1); nothing else changes. Every resource's raw JSON is also checked
field by field against the Studio v2 OpenAPI shapes (tables below, from studio.md §2.2–2.3).

The flow is a real Studio export from the conformance set (twilio-labs patient appointment management):
``incomingRequest`` → set variables → split on ``{{flow.data.event_type}}``; an unknown event type ends the
execution at once (``noMatch``), ``BOOKED`` calls a Function we serve locally and hold, so the execution stays
active until we end it.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from devtools.cluster import Cluster
from shared.settings import Settings
from tests.conftest import APPOINTMENTS

FLOW_FILE = APPOINTMENTS

# -- the Studio v2 shapes ----------------------------------------------------------------------------------
# type names: str, str?, int, bool, object, array, null, date (ISO 8601, Z), uri (absolute, on the public base
# URL), sid:XX / sid:XX? (34-char sid with that prefix, or null), enum:a|b, links:k,… (object of absolute URLs)

FLOW = {
    "sid": "sid:FW", "account_sid": "sid:AC", "author_sid": "sid:US?", "friendly_name": "str", "definition": "object",
    "status": "enum:draft|published", "revision": "int", "commit_message": "str?", "valid": "bool", "errors": "array",
    "warnings": "array", "date_created": "date", "date_updated": "date", "webhook_url": "uri", "url": "uri",
    "links": "links:test_users,revisions,executions",
}
FLOW_IN_LIST = {**FLOW, "definition": "null", "valid": "null", "errors": "null", "warnings": "null"}
REVISION = {k: v for k, v in FLOW.items() if k not in ("webhook_url", "warnings", "links")}
REVISION_IN_LIST = {**REVISION, "definition": "null", "valid": "null", "errors": "null"}
FLOW_VALIDATE = {"valid": "bool"}
TEST_USERS = {"sid": "sid:FW", "test_users": "array", "url": "uri"}
EXECUTION = {
    "sid": "sid:FN", "account_sid": "sid:AC", "flow_sid": "sid:FW", "contact_channel_address": "str",
    "contact_sid": "sid:FC?", "flow_version": "int", "context": "object", "status": "enum:active|ended",
    "date_created": "date", "date_updated": "date", "initiated_by": "str", "url": "uri",
    "links": "links:steps,execution_context",
}
EXECUTION_IN_LIST = {**EXECUTION, "context": "null"}
EXECUTION_CONTEXT = {"account_sid": "sid:AC", "context": "object", "flow_sid": "sid:FW", "execution_sid": "sid:FN",
                     "url": "uri"}
STEP = {
    "sid": "sid:FT", "account_sid": "sid:AC", "flow_sid": "sid:FW", "execution_sid": "sid:FN",
    "parent_step_sid": "sid:FT?", "name": "str", "context": "object", "transitioned_from": "str",
    "transitioned_to": "str", "type": "str", "date_created": "date", "date_updated": "date", "url": "uri",
    "links": "links:step_context",
}
STEP_IN_LIST = {**STEP, "context": "null"}
STEP_CONTEXT = {"account_sid": "sid:AC", "context": "object", "execution_sid": "sid:FN", "flow_sid": "sid:FW",
                "step_sid": "sid:FT", "url": "uri"}
META = {"page": "int", "page_size": "int", "first_page_url": "uri", "previous_page_url": "uri?", "url": "uri",
        "next_page_url": "uri?", "key": "str"}
ERROR = {"code": "int", "message": "str", "more_info": "uri-any", "status": "int"}

_SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")


def _fits(value: Any, kind: str, base: str) -> bool:
    if kind.endswith("?"):
        return value is None or _fits(value, kind[:-1], base)
    if kind.startswith("sid:"):
        return isinstance(value, str) and value.startswith(kind[4:]) and bool(_SID.match(value))
    if kind.startswith("enum:"):
        return value in kind[5:].split("|")
    if kind.startswith("links:"):
        return (isinstance(value, dict) and sorted(value) == sorted(kind[6:].split(","))
                and all(_fits(v, "uri", base) for v in value.values()))
    if kind == "date":
        return isinstance(value, str) and value.endswith("Z") and bool(datetime.fromisoformat(value.replace("Z", "+00:00")))
    if kind == "uri":
        return isinstance(value, str) and value.startswith(base + "/")
    if kind == "uri-any":
        return isinstance(value, str) and urlparse(value).scheme == "https"
    simple: dict[str, type] = {"str": str, "int": int, "bool": bool, "object": dict, "array": list, "null": type(None)}
    return isinstance(value, simple[kind]) and not (kind == "int" and isinstance(value, bool))


def check(body: Any, table: dict[str, str], base: str) -> dict[str, Any]:
    """``body`` has exactly ``table``'s fields, each of its JSON type; URLs are absolute on ``base``."""
    assert isinstance(body, dict), body
    assert sorted(body) == sorted(table), f"extra fields {set(body) - set(table)}, missing {set(table) - set(body)}"
    wrong = {name: body[name] for name, kind in table.items() if not _fits(body[name], kind, base)}
    assert not wrong, f"wrong types: {wrong} (expected {[table[n] for n in wrong]})"
    return body


def check_page(body: Any, key: str, item_table: dict[str, str], base: str) -> list[dict[str, Any]]:
    assert sorted(body) == sorted([key, "meta"]), list(body)
    check(body["meta"], META, base)
    assert body["meta"]["key"] == key
    for item in body[key]:
        check(item, item_table, base)
    return list(body[key])


# -- fixtures ----------------------------------------------------------------------------------------------


class Functions:
    """A local stand-in for the flow's Twilio Functions: ``/save-booked`` is held until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.calls.append(self.path)
                if self.path.startswith("/save-booked"):
                    outer.release.wait(8)
                body = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def functions() -> Iterator[Functions]:
    f = Functions()
    yield f
    f.close()


@pytest.fixture
def client(cluster: Cluster, settings: Settings) -> Client:
    c = Client(settings.account_sid, settings.auth_token)
    c.studio.base_url = cluster.ingress_url  # the one line that points the official client at Switchboard
    return c


class Raw:
    """The same API through the client's own ``request`` (raw JSON, for the shape checks)."""

    def __init__(self, client: Client, base: str) -> None:
        self.client, self.base = client, base

    def get(self, url: str, params: dict[str, Any] | None = None) -> tuple[int, Any]:
        response = self.client.request("GET", url if url.startswith("http") else self.base + url, params=params)
        return response.status_code, json.loads(response.text)

    def post(self, url: str, data: dict[str, Any]) -> tuple[int, Any]:
        response = self.client.request("POST", url if url.startswith("http") else self.base + url, data=data)
        return response.status_code, json.loads(response.text)


@pytest.fixture
def raw(client: Client, cluster: Cluster) -> Raw:
    return Raw(client, cluster.ingress_url)


def load_flow() -> dict[str, Any]:
    return json.loads(FLOW_FILE.read_text())


def pointed_at(definition: dict[str, Any], base: str) -> dict[str, Any]:
    """The definition with every Function URL moved to our local server (as the conformance README asks)."""
    out = copy.deepcopy(definition)
    for state in out["states"]:
        url = state["properties"].get("url", "")
        if state["type"] == "run-function" and url.startswith("https://YOUR_TWILIO_ENVIRONMENT_DOMAIN_NAME/"):
            state["properties"]["url"] = base + "/" + url.rsplit("/", 1)[1]
    return out


def contact() -> str:
    return f"+1555{uuid.uuid4().int % 10**7:07d}"


def wait_for(predicate: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


# -- the whole surface, one story ----------------------------------------------------------------------------


def test_the_twilio_client_drives_the_whole_studio_v2_surface(
        client: Client, raw: Raw, functions: Functions, cluster: Cluster, settings: Settings) -> None:
    base = cluster.ingress_url
    studio = client.studio.v2
    original = load_flow()

    # Create a flow from the exported file, exactly as exported.
    flow = studio.flows.create(friendly_name="Patient appointments", status="published", definition=original,
                               commit_message="imported from Studio")
    assert flow.sid.startswith("FW") and flow.revision == 1 and flow.status == "published" and flow.valid is True
    assert flow.definition == original and flow.commit_message == "imported from Studio"
    assert flow.url == f"{base}/v2/Flows/{flow.sid}"
    assert flow.webhook_url == f"{base}/v1/Accounts/{settings.account_sid}/Flows/{flow.sid}"
    check(raw.get(f"/v2/Flows/{flow.sid}")[1], FLOW, base)

    # Update it: the Functions now point at our server → revision 2.
    updated_definition = pointed_at(original, functions.url)
    author = "US" + "a" * 32
    flow = studio.flows(flow.sid).update(status="published", definition=updated_definition,
                                         commit_message="functions on the test server", author_sid=author)
    assert flow.revision == 2 and flow.definition == updated_definition and flow.author_sid == author
    assert flow.commit_message == "functions on the test server"
    same = studio.flows(flow.sid).update(status="published", friendly_name="Patient appointments (renamed)")
    assert same.revision == 2 and same.friendly_name == "Patient appointments (renamed)"

    # Flows list (definition null in lists, as in Studio).
    listed = [f for f in studio.flows.list(page_size=1000) if f.sid == flow.sid]
    assert len(listed) == 1 and listed[0].definition is None and listed[0].revision == 2
    check_page(raw.get("/v2/Flows", {"PageSize": 2})[1], "flows", FLOW_IN_LIST, base)

    # Revisions: list, fetch by number and by name; anything else is 81021.
    revisions = studio.flows(flow.sid).revisions.list()
    assert [r.revision for r in revisions] == [2, 1]
    assert [r.commit_message for r in revisions] == ["functions on the test server", "imported from Studio"]
    first = studio.flows(flow.sid).revisions("1").fetch()
    assert first.definition == original and first.url == f"{base}/v2/Flows/{flow.sid}/Revisions/1"
    assert studio.flows(flow.sid).revisions("LatestPublished").fetch().revision == 2
    assert studio.flows(flow.sid).revisions("LatestRevision").fetch().definition == updated_definition
    with pytest.raises(TwilioRestException) as bad_revision:
        studio.flows(flow.sid).revisions("Newest").fetch()
    assert (bad_revision.value.status, bad_revision.value.code) == (400, 81021)
    check_page(raw.get(f"/v2/Flows/{flow.sid}/Revisions")[1], "revisions", REVISION_IN_LIST, base)
    check(raw.get(f"/v2/Flows/{flow.sid}/Revisions/1")[1], REVISION, base)

    # Validate: a good definition is {"valid": true}; a bad one is error 81022 with property paths.
    assert studio.flow_validate.update(friendly_name="ok", status="draft", definition=original).valid is True
    code, body = raw.post("/v2/Flows/Validate", {"FriendlyName": "ok", "Status": "draft",
                                                   "Definition": json.dumps(original)})
    assert code == 200 and check(body, FLOW_VALIDATE, base) == {"valid": True}
    broken = copy.deepcopy(original)
    broken["states"][1]["transitions"][0]["next"] = "no_such_widget"
    broken["states"][2]["name"] = broken["states"][1]["name"]
    with pytest.raises(TwilioRestException) as invalid:
        studio.flow_validate.update(friendly_name="bad", status="draft", definition=broken)
    assert (invalid.value.status, invalid.value.code) == (400, 81022)
    assert invalid.value.msg.endswith("Flow definition validation failed")
    paths = [e["property_path"] for e in invalid.value.details["errors"]]  # type: ignore[index]
    assert "#/states/1/transitions/0/next" in paths and "#/states/2/name" in paths
    with pytest.raises(TwilioRestException) as rejected_update:
        studio.flows(flow.sid).update(status="published", definition=broken)
    assert rejected_update.value.code == 81022
    assert studio.flows(flow.sid).fetch().revision == 2  # a rejected update changes nothing

    # Executions that end at once (unknown event type → noMatch), in two batches a second apart.
    executions = studio.flows(flow.sid).executions
    batch_a = [executions.create(to=contact(), from_="+15550001111", parameters={"event_type": "NONE", "n": n})
               for n in range(3)]
    boundary = datetime.fromtimestamp(int(time.time()) + 1, tz=UTC)
    time.sleep(max(0.0, boundary.timestamp() - time.time()) + 0.05)
    batch_b = [executions.create(to=contact(), from_="+15550001111", parameters={"event_type": "NONE", "n": n})
               for n in range(3, 7)]
    for e in batch_a + batch_b:
        assert e.sid.startswith("FN") and e.flow_sid == flow.sid and e.flow_version == 2
    wait_for(lambda: all(executions(e.sid).fetch().status == "ended" for e in batch_a + batch_b))

    # Start the one we will end: BOOKED calls the held Function, so it stays active.
    parameters = {"event_type": "BOOKED", "patient_first_name": "Ann", "appointment_date": "2024-05-01"}
    active = executions.create(to=contact(), from_="+15550001111", parameters=parameters)
    assert active.status == "active" and active.contact_channel_address.startswith("+1555")
    check(raw.get(f"/v2/Flows/{flow.sid}/Executions/{active.sid}")[1], EXECUTION, base)

    # Lists: newest first, filters, and paging across several pages.
    everything = [e.sid for e in executions.list(page_size=1000)]
    assert everything[0] == active.sid and set(everything) == {e.sid for e in batch_a + batch_b + [active]}
    assert [e.sid for e in executions.list(status="active")] == [active.sid]
    assert {e.sid for e in executions.list(status="ended")} == {e.sid for e in batch_a + batch_b}
    boundary_text = boundary.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert {e.sid for e in executions.list(date_created_to=boundary_text)} == {e.sid for e in batch_a}
    assert {e.sid for e in executions.list(date_created_from=boundary_text, status="ended")} == {e.sid for e in batch_b}
    page = executions.page(page_size=3)
    seen, pages = [], 0
    while page is not None:
        pages += 1
        seen.extend(e.sid for e in page)
        page = page.next_page()
    assert pages == 3 and seen == everything
    assert [e.sid for e in executions.list(page_size=2, status="ended")] == [s for s in everything if s != active.sid]
    first_page = raw.get(f"/v2/Flows/{flow.sid}/Executions", {"PageSize": 3, "Status": "ended"})[1]
    items = check_page(first_page, "executions", EXECUTION_IN_LIST, base)
    assert len(items) == 3 and first_page["meta"]["previous_page_url"] is None
    assert "Status=ended" in first_page["meta"]["next_page_url"] and "PageToken=PA" in first_page["meta"]["next_page_url"]
    second_page = raw.get(first_page["meta"]["next_page_url"])[1]
    check_page(second_page, "executions", EXECUTION_IN_LIST, base)
    back = raw.get(second_page["meta"]["previous_page_url"])[1]
    assert [e["sid"] for e in back["executions"]] == [e["sid"] for e in items]

    # Context, steps and step context of the active one (Trigger → set variables → split → the Function).
    context = executions(active.sid).execution_context().fetch()
    assert context.context["flow"]["data"] == parameters  # type: ignore[index]
    assert context.context["flow"]["variables"]["CUSTOMER_NAME"] == "YOUR_HEALTH_SYSTEM_NAME"  # type: ignore[index]
    check(raw.get(f"/v2/Flows/{flow.sid}/Executions/{active.sid}/Context")[1], EXECUTION_CONTEXT, base)
    steps = wait_for(lambda: (s := executions(active.sid).steps.list()) and len(s) >= 3 and s)
    assert [(s.name, s.transitioned_from, s.transitioned_to) for s in reversed(steps)] == [
        ("incomingRequest", "Trigger", "set_global_variables"),
        ("next", "set_global_variables", "split_on_event_type"),
        ("match", "split_on_event_type", "save-booked"),
    ]
    split = steps[0]
    assert executions(active.sid).steps(split.sid).fetch().type == "split-based-on"
    step_context = executions(active.sid).steps(split.sid).step_context().fetch()
    assert step_context.step_sid == split.sid and isinstance(step_context.context, dict)
    check_page(raw.get(f"/v2/Flows/{flow.sid}/Executions/{active.sid}/Steps")[1], "steps", STEP_IN_LIST, base)
    check(raw.get(f"/v2/Flows/{flow.sid}/Executions/{active.sid}/Steps/{split.sid}")[1], STEP, base)
    check(raw.get(f"/v2/Flows/{flow.sid}/Executions/{active.sid}/Steps/{split.sid}/Context")[1], STEP_CONTEXT, base)
    assert functions.calls == ["/save-booked"]

    # End it.
    ended = executions(active.sid).update(status="ended")
    assert ended.status == "ended" and ended.sid == active.sid
    assert executions(active.sid).fetch().status == "ended"
    functions.release.set()

    # Delete it (and its steps).
    assert executions(active.sid).delete() is True
    with pytest.raises(TwilioRestException) as gone:
        executions(active.sid).fetch()
    assert (gone.value.status, gone.value.code) == (404, 20404)
    code, body = raw.get(f"/v2/Flows/{flow.sid}/Executions/{active.sid}/Steps/{split.sid}")
    assert code == 404 and check(body, ERROR, base)["code"] == 20404
    assert active.sid not in [e.sid for e in executions.list()]

    # Delete the flow: every revision goes, and its executions with it.
    assert studio.flows(flow.sid).delete() is True
    with pytest.raises(TwilioRestException) as flow_gone:
        studio.flows(flow.sid).fetch()
    assert flow_gone.value.status == 404
    with pytest.raises(TwilioRestException):
        studio.flows(flow.sid).revisions("1").fetch()


# -- focused behaviours ---------------------------------------------------------------------------------------


def test_draft_revisions_run_only_for_test_users(client: Client, raw: Raw, cluster: Cluster) -> None:
    studio = client.studio.v2
    definition = pointed_at(load_flow(), "http://127.0.0.1:9")
    flow = studio.flows.create(friendly_name="drafts", status="published", definition=definition)
    draft = copy.deepcopy(definition)
    draft["description"] = "the draft"
    assert studio.flows(flow.sid).update(status="draft", definition=draft).revision == 2
    tester, someone = contact(), contact()
    users = studio.flows(flow.sid).test_users().update(test_users=[tester])
    assert users.test_users == [tester] and users.sid == flow.sid
    assert studio.flows(flow.sid).test_users().fetch().test_users == [tester]
    check(raw.get(f"/v2/Flows/{flow.sid}/TestUsers")[1], TEST_USERS, cluster.ingress_url)

    executions = studio.flows(flow.sid).executions
    assert executions.create(to=someone, from_="+15550001111", parameters={"event_type": "NONE"}).flow_version == 1
    assert executions.create(to=tester, from_="+15550001111", parameters={"event_type": "NONE"}).flow_version == 2
    # A later revision carries the test users on.
    assert studio.flows(flow.sid).update(status="draft", definition=definition).revision == 3
    assert studio.flows(flow.sid).test_users().fetch().test_users == [tester]


def test_a_flow_with_only_drafts_runs_for_nobody_but_its_test_users(client: Client) -> None:
    studio = client.studio.v2
    flow = studio.flows.create(friendly_name="draft only", status="draft", definition=load_flow())
    with pytest.raises(TwilioRestException) as refused:
        studio.flows(flow.sid).executions.create(to=contact(), from_="+15550001111")
    assert (refused.value.status, refused.value.code) == (400, 20001)
    tester = contact()
    studio.flows(flow.sid).test_users().update(test_users=[tester])
    started = studio.flows(flow.sid).executions.create(to=tester, from_="+15550001111",
                                                       parameters={"event_type": "NONE"})
    assert started.flow_version == 1


def test_wrong_or_missing_credentials_get_401_20003(cluster: Cluster, settings: Settings) -> None:
    bad = Client(settings.account_sid, "not-the-token")
    bad.studio.base_url = cluster.ingress_url
    with pytest.raises(TwilioRestException) as caught:
        bad.studio.v2.flows("FW" + "0" * 32).fetch()
    assert (caught.value.status, caught.value.code) == (401, 20003)
    response = requests.get(f"{cluster.ingress_url}/v2/Flows", timeout=10)
    assert response.status_code == 401 and response.json()["code"] == 20003


def test_a_request_body_over_the_limit_gets_413(cluster: Cluster, settings: Settings) -> None:
    huge = "x" * (settings.max_request_body_bytes + 1)
    response = requests.post(f"{cluster.ingress_url}/v2/Flows", data={"FriendlyName": "big", "Status": "draft",
                                                                        "Definition": huge},
                             auth=(settings.account_sid, settings.auth_token), timeout=30)
    assert response.status_code == 413
    assert response.json()["status"] == 413


@pytest.mark.parametrize(("query", "code"), [
    ({"PageSize": 0}, 20001), ({"PageSize": 1001}, 20001), ({"PageToken": "PAnonsense"}, 20001),
    ({"Status": "paused"}, 20001), ({"DateCreatedFrom": "yesterday"}, 20001),
], ids=["page-size-0", "page-size-1001", "bad-token", "bad-status", "bad-date"])
def test_bad_list_parameters_are_400_with_a_twilio_error_body(client: Client, raw: Raw, cluster: Cluster,
                                                             query: dict[str, Any], code: int) -> None:
    flow = client.studio.v2.flows.create(friendly_name="params", status="published", definition=load_flow())
    status, body = raw.get(f"/v2/Flows/{flow.sid}/Executions", query)
    assert status == 400 and check(body, ERROR, cluster.ingress_url)["code"] == code
