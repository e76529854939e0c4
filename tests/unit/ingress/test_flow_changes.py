"""Flow writes: when an update makes a revision, how definitions are checked, which revision an execution runs."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import orjson
import pytest

from services.ingress.auth import authorized
from services.ingress.errors import ApiError
from services.ingress.flow_changes import parse_author_sid, plan_update, validated_definition
from shared.flow_catalog import FlowCatalog, flow_key
from shared.messages import FlowRecord, encode
from shared.settings import Settings

DEFINITION: dict[str, Any] = {
    "description": "d", "initial_state": "Trigger", "flags": {"allow_concurrent_calls": True},
    "states": [{"name": "Trigger", "type": "trigger", "transitions": [{"event": "incomingRequest"}], "properties": {}}],
}
OTHER = {**DEFINITION, "description": "changed"}


def record(revision: int = 1, status: str = "published", definition: dict[str, Any] | None = None,
           test_users: list[str] | None = None) -> FlowRecord:
    return FlowRecord(sid="FW" + "1" * 32, revision=revision, friendly_name="name", status=status,
                      definition=definition or DEFINITION, commit_message="first", valid=True, errors=[], warnings=[],
                      date_created=10.0, date_updated=10.0, test_users=test_users or [])


@pytest.mark.parametrize(("status", "definition", "name", "revision", "expected_status", "commit"), [
    ("published", OTHER, None, 2, "published", "fix"),
    ("published", None, None, 1, "published", "first"),
    ("published", DEFINITION, "renamed", 1, "published", "first"),
    ("draft", None, None, 2, "draft", "fix"),
    ("draft", OTHER, None, 2, "draft", "fix"),
], ids=["new-definition-new-revision", "nothing-changed-same-revision", "rename-only-same-revision",
        "status-change-new-revision", "draft-edit-new-revision"])
def test_an_update_makes_a_new_revision_only_when_definition_or_status_changes(
        status: str, definition: dict[str, Any] | None, name: str | None, revision: int, expected_status: str,
        commit: str) -> None:
    latest = record(test_users=["+1555"])
    out = plan_update(latest, status, definition, name, "fix", now=20.0)
    assert (out.revision, out.status, out.commit_message) == (revision, expected_status, commit)
    assert out.friendly_name == (name or "name")
    assert out.test_users == ["+1555"]  # carried to every new revision
    assert out.date_updated == 20.0
    assert out.definition == (definition or DEFINITION)


def test_a_new_revision_records_its_author_and_an_in_place_rewrite_keeps_the_old_one() -> None:
    latest = dataclasses.replace(record(), author_sid="US" + "1" * 32)
    assert plan_update(latest, "published", OTHER, None, None, 20.0, "US" + "2" * 32).author_sid == "US" + "2" * 32
    assert plan_update(latest, "published", None, "renamed", None, 20.0, "US" + "2" * 32).author_sid == "US" + "1" * 32


def test_an_author_sid_that_is_not_a_user_sid_is_a_400() -> None:
    with pytest.raises(ApiError) as caught:
        parse_author_sid("AC" + "1" * 32)
    assert (caught.value.status, caught.value.code) == (400, 20001)


def test_a_status_only_update_keeps_the_latest_definition() -> None:
    out = plan_update(record(definition=OTHER), "draft", None, None, None, now=20.0)
    assert out.definition == OTHER and out.revision == 2 and out.date_created == 20.0


@pytest.mark.parametrize(("text", "path"), [
    ("{not json", "#"),
    (orjson.dumps({**DEFINITION, "initial_state": "Nowhere"}).decode(), "#/initial_state"),
    (orjson.dumps({**DEFINITION, "states": [
        {"name": "Trigger", "type": "trigger", "transitions": [{"event": "incomingRequest", "next": "gone"}]}]}).decode(),
     "#/states/0/transitions/0/next"),
], ids=["not-json", "unknown-initial-state", "transition-to-unknown-widget"])
def test_an_invalid_definition_is_81022_with_the_property_path(text: str, path: str) -> None:
    with pytest.raises(ApiError) as caught:
        validated_definition(text, 1_000_000)
    error = caught.value
    assert (error.status, error.code, error.message) == (400, 81022, "Flow definition validation failed")
    assert error.details is not None and path in [e["property_path"] for e in error.details["errors"]]


def test_a_definition_over_the_size_limit_is_81022() -> None:
    with pytest.raises(ApiError) as caught:
        validated_definition(orjson.dumps(DEFINITION).decode(), 10)
    assert caught.value.code == 81022


def _catalog(*records: FlowRecord) -> FlowCatalog:
    catalog = FlowCatalog()
    for r in records:
        catalog.apply(flow_key(r.sid, r.revision), encode(r))
    return catalog


@pytest.mark.parametrize(("revisions", "contact", "expected"), [
    ([("published", []), ("draft", ["+1test"])], "+1anyone", 1),
    ([("published", []), ("draft", ["+1test"])], "+1test", 2),
    ([("draft", [])], "+1anyone", None),
    ([("draft", ["+1test"])], "+1test", 1),
    ([("published", []), ("published", []), ("draft", [])], "+1anyone", 2),
], ids=["everyone-runs-latest-published", "test-user-runs-latest-draft", "no-published-revision",
        "test-user-runs-only-draft", "latest-of-several-published"])
def test_the_revision_an_execution_runs(revisions: list[tuple[str, list[str]]], contact: str, expected: int | None) -> None:
    catalog = _catalog(*(record(n + 1, status, test_users=users) for n, (status, users) in enumerate(revisions)))
    picked = catalog.revision_for("FW" + "1" * 32, contact)
    assert (picked.revision if picked else None) == expected


def test_test_users_come_from_the_latest_revision_record() -> None:
    first = record(1, test_users=["+1old"])
    catalog = _catalog(first, dataclasses.replace(first, revision=2, test_users=["+1new"]))
    assert catalog.test_users("FW" + "1" * 32) == ["+1new"]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(("header", "ok"), [
    (_basic(Settings().account_sid, Settings().auth_token), True),
    (_basic("SK" + "k" * 32, "secret"), True),
    (_basic(Settings().account_sid, "wrong"), False),
    (_basic("SK" + "k" * 32, Settings().auth_token), False),
    ("Bearer abc", False),
    ("Basic !!!", False),
    (None, False),
], ids=["account-and-token", "api-key-and-secret", "wrong-token", "key-with-token", "not-basic", "not-base64", "missing"])
def test_basic_auth_accepts_the_account_pair_or_the_api_key_pair(header: str | None, ok: bool) -> None:
    settings = Settings(api_key_sid="SK" + "k" * 32, api_key_secret="secret")
    assert authorized(header, settings) is ok
