"""The compact per-partition timer index: order, replace, cancel, bounded stale entries."""

from __future__ import annotations

import random

import pytest

from services.scheduler.index import Timer, TimerIndex, squeeze, unsqueeze

SID = "FN" + "0123456789abcdef" * 2
ROUTE = "FW" + "fedcba9876543210" * 2 + ":+15550001111"
NOW = 1_700_000_000.0


def put(index: TimerIndex, name: str, due: float, token: str = "3") -> None:
    index.put(name.encode(), due, SID, ROUTE, token)


@pytest.mark.parametrize("text", [
    "TM" + "0123456789abcdef" * 2,
    "FW" + "0123456789abcdef" * 2 + ":+15550001111",
    "TM" + "0123456789ABCDEF" * 2,  # uppercase hex is not a sid: kept verbatim
    "TM" + "0123456789abcdeg" * 2,  # not hex
    "tm" + "0123456789abcdef" * 2,
    "short",
    "",
    "FW" + "0123456789abcdef" * 2 + ":whatsapp:+4915112345678",
    "ÜnicodeÜnicodeÜnicodeÜnicodeÜnicode",
], ids=["timer-sid", "route", "uppercase-hex", "not-hex", "lowercase-prefix", "short", "empty", "route-with-colons",
        "unicode"])
def test_squeeze_round_trips_every_text(text: str) -> None:
    raw = text.encode()
    assert unsqueeze(squeeze(raw)) == raw


def test_squeeze_stores_a_sid_in_19_bytes() -> None:
    assert len(squeeze(("TM" + "0123456789abcdef" * 2).encode())) == 19


def test_squeeze_keeps_distinct_texts_distinct() -> None:
    texts = [b"TM" + b"0123456789abcdef" * 2, b"TM" + b"0123456789ABCDEF" * 2, b"\x01TM", b"\x00x", b"x"]
    assert len({squeeze(t) for t in texts}) == len(texts)


def test_timers_pop_in_due_order_with_everything_timer_fired_needs() -> None:
    index = TimerIndex()
    put(index, "TMc", NOW + 3)
    put(index, "TMa", NOW + 1, token="expiry")
    put(index, "TMb", NOW + 2)
    assert index.next_due() == NOW + 1
    assert index.pop_due(NOW + 2.5) == [
        Timer("TMa", SID, ROUTE, "expiry", NOW + 1),
        Timer("TMb", SID, ROUTE, "3", NOW + 2),
    ]
    assert len(index) == 1 and index.next_due() == NOW + 3


def test_nothing_pops_before_its_due_time() -> None:
    index = TimerIndex()
    put(index, "TMa", NOW + 1)
    assert index.pop_due(NOW + 0.999) == []
    assert [t.timer_id for t in index.pop_due(NOW + 1)] == ["TMa"]


def test_a_cancelled_timer_never_pops() -> None:
    index = TimerIndex()
    put(index, "TMa", NOW + 1)
    put(index, "TMb", NOW + 2)
    assert index.cancel(b"TMa") is True
    assert index.cancel(b"TMa") is False
    assert [t.timer_id for t in index.pop_due(NOW + 10)] == ["TMb"]
    assert index.next_due() is None


def test_a_second_put_replaces_the_timer_and_only_the_new_due_time_counts() -> None:
    index = TimerIndex()
    put(index, "TMa", NOW + 1)
    put(index, "TMa", NOW + 5, token="4")
    assert len(index) == 1
    assert index.pop_due(NOW + 2) == []
    assert index.next_due() == NOW + 5
    assert index.pop_due(NOW + 5) == [Timer("TMa", SID, ROUTE, "4", NOW + 5)]


def test_an_identical_second_put_pops_once() -> None:
    index = TimerIndex()
    put(index, "TMa", NOW + 1)
    put(index, "TMa", NOW + 1)
    assert len(index.pop_due(NOW + 1)) == 1
    assert index.pop_due(NOW + 1) == []


def test_pop_due_returns_at_most_limit_and_keeps_the_rest() -> None:
    index = TimerIndex()
    for i in range(10):
        put(index, f"TM{i}", NOW + i / 10)
    assert [t.timer_id for t in index.pop_due(NOW + 5, limit=4)] == ["TM0", "TM1", "TM2", "TM3"]
    assert len(index) == 6


def test_bulk_loading_orders_once_when_switched_off() -> None:
    index = TimerIndex()
    index.bulk = True
    dues = list(range(100))
    random.Random(4).shuffle(dues)
    for d in dues:
        put(index, f"TM{d}", NOW + d)
    index.cancel(b"TM0")
    index.bulk = False
    assert [t.due_at for t in index.pop_due(NOW + 1000, limit=1000)] == [NOW + d for d in range(1, 100)]


def test_cancel_churn_does_not_grow_the_heap_without_bound() -> None:
    index = TimerIndex()
    put(index, "TMkeep", NOW + 10**6)
    for i in range(20_000):  # an execution's expiry timer, cancelled when it ends
        put(index, f"TM{i}", NOW + 30 * 86400)
        index.cancel(f"TM{i}".encode())
    assert len(index) == 1
    assert len(index._heap) <= 1 + 1025


def test_a_due_time_before_1970_pops_at_once() -> None:
    index = TimerIndex()
    put(index, "TMa", -5.0)
    assert [t.timer_id for t in index.pop_due(0.0)] == ["TMa"]


def test_membership_and_get_use_the_kafka_key() -> None:
    index = TimerIndex()
    key = "TM" + "ab" * 16
    put(index, key, NOW)
    assert key.encode() in index
    assert index.get(key.encode()) == Timer(key, SID, ROUTE, "3", NOW)
    assert index.get(b"TMother") is None


@pytest.fixture
def every_hash_collides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut the index's hash to 0 bits: every timer id after the first lands in the collision spill."""
    monkeypatch.setattr("services.scheduler.index._HASH_MASK", 0)


def test_colliding_hashes_keep_every_timer_apart(every_hash_collides: None) -> None:
    index = TimerIndex()
    for i in range(6):
        put(index, f"TM{i}", NOW + 6 - i)
    assert len(index) == 6 and b"TM3" in index and index.get(b"TM3") == Timer("TM3", SID, ROUTE, "3", NOW + 3)
    assert index.cancel(b"TM0") is True  # the one in the dict proper
    assert index.cancel(b"TM4") is True  # one in the spill
    put(index, "TM1", NOW + 100)  # replaced while in the spill
    put(index, "TM9", NOW + 0.5)  # takes the freed slot
    assert [t.timer_id for t in index.pop_due(NOW + 10)] == ["TM9", "TM5", "TM3", "TM2"]
    assert [t.timer_id for t in index.pop_due(NOW + 100)] == ["TM1"]
    assert len(index) == 0 and index.next_due() is None


def test_a_timer_replaced_after_its_colliding_neighbour_left_is_not_counted_twice(every_hash_collides: None) -> None:
    index = TimerIndex()
    put(index, "TMa", NOW + 1)
    put(index, "TMb", NOW + 2)  # spilled
    index.cancel(b"TMa")
    put(index, "TMb", NOW + 3)  # now in the dict proper; the spilled copy must go
    assert len(index) == 1
    assert index.pop_due(NOW + 10) == [Timer("TMb", SID, ROUTE, "3", NOW + 3)]


def test_routes_without_a_flow_sid_are_stored_verbatim() -> None:
    index = TimerIndex()
    index.put(b"TMa", NOW, SID, "plain-route:+1555", "1")
    index.put(b"TMb", NOW, "not-a-sid", ROUTE, "1")
    assert {(t.route, t.execution_sid) for t in index.pop_due(NOW)} == {("plain-route:+1555", SID),
                                                                        (ROUTE, "not-a-sid")}


def test_a_field_longer_than_65535_bytes_is_refused() -> None:
    with pytest.raises(ValueError):
        TimerIndex().put(b"TMa", NOW, SID, "x" * 70000, "1")
