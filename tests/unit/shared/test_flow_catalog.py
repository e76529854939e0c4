"""The flow catalog: a process's own writes stay visible until its reader catches up with them."""

from __future__ import annotations

import dataclasses

import pytest

from shared.flow_catalog import FlowCatalog, flow_key, flow_wait
from shared.messages import FlowRecord, encode

SID = "FW" + "1" * 32
KEY = flow_key(SID, 2)


def _record(test_users: list[str]) -> FlowRecord:
    return FlowRecord(sid=SID, revision=2, friendly_name="f", status="draft", definition={}, commit_message="",
                      valid=True, errors=[], warnings=[], date_created=1.0, date_updated=1.0, test_users=test_users)


def test_an_older_record_the_reader_delivers_after_our_write_does_not_replace_it() -> None:
    catalog = FlowCatalog()
    catalog.apply_written(KEY, encode(_record([])), offset=7)          # update: a new draft revision
    catalog.apply_written(KEY, encode(_record(["+1555"])), offset=8)   # then TestUsers on it
    catalog.apply(KEY, encode(_record([])), offset=7)                  # the reader is one record behind
    assert catalog.test_users(SID) == ["+1555"]
    catalog.apply(KEY, encode(_record(["+1555"])), offset=8)           # caught up
    assert catalog.test_users(SID) == ["+1555"]


def test_once_caught_up_the_reader_applies_later_writes_of_other_replicas() -> None:
    catalog = FlowCatalog()
    catalog.apply_written(KEY, encode(_record(["+1a"])), offset=3)
    catalog.apply(KEY, encode(_record(["+1a"])), offset=3)
    catalog.apply(KEY, encode(_record(["+1b"])), offset=4)             # another ingress replica's write
    assert catalog.test_users(SID) == ["+1b"]


def test_a_deleted_flow_does_not_come_back_while_the_reader_replays_its_last_record() -> None:
    catalog = FlowCatalog()
    catalog.apply(KEY, encode(_record([])), offset=5)
    catalog.apply_written(KEY, None, offset=9)                         # our delete (tombstone)
    catalog.apply(KEY, encode(dataclasses.replace(_record([]), friendly_name="old")), offset=6)
    assert catalog.latest(SID) is None
    catalog.apply(KEY, None, offset=9)
    assert catalog.latest(SID) is None


def test_records_not_from_the_reader_are_always_applied() -> None:
    catalog = FlowCatalog()
    catalog.apply(KEY, encode(_record(["+1a"])))
    catalog.apply(KEY, encode(_record(["+1b"])))
    assert catalog.test_users(SID) == ["+1b"]


@pytest.mark.parametrize(("now", "sent_at", "wait"), [
    (100.0, 100.0, 10.0), (103.0, 100.0, 7.0), (110.0, 100.0, 0.0), (500.0, 0.0, 0.0), (99.0, 100.0, 10.0),
], ids=["just-sent-waits-the-budget", "waits-what-is-left", "budget-spent", "an-old-poison-event-waits-nothing",
        "a-clock-behind-the-sender-waits-no-longer-than-the-budget"])
def test_an_event_waits_for_its_flow_only_while_the_flow_could_still_be_on_its_way(
        now: float, sent_at: float, wait: float) -> None:
    assert flow_wait(now, sent_at) == wait
