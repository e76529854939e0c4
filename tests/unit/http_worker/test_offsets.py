"""OffsetTracker: commit only below the oldest request still in flight."""

from __future__ import annotations

from services.http_worker.offsets import OffsetTracker


def test_nothing_is_committable_before_anything_started() -> None:
    assert OffsetTracker[str]().committable() == {}


def test_with_nothing_in_flight_the_offset_after_the_newest_started_is_committable() -> None:
    t = OffsetTracker[str]()
    for offset in (0, 1, 2):
        t.started("p0", offset)
        t.finished("p0", offset)
    assert t.committable() == {"p0": 3}


def test_an_unfinished_older_request_holds_the_commit_back_although_newer_ones_finished() -> None:
    t = OffsetTracker[str]()
    for offset in (5, 6, 7):
        t.started("p0", offset)
    t.finished("p0", 6)
    t.finished("p0", 7)
    assert t.committable() == {"p0": 5}
    t.finished("p0", 5)
    assert t.committable() == {"p0": 8}


def test_the_commit_stops_at_the_oldest_in_flight_offset_not_after_it() -> None:
    t = OffsetTracker[str]()
    for offset in (10, 11, 12):
        t.started("p0", offset)
    t.finished("p0", 10)
    assert t.committable() == {"p0": 11}


def test_partitions_are_tracked_independently() -> None:
    t = OffsetTracker[str]()
    t.started("p0", 0)
    t.started("p1", 40)
    t.finished("p1", 40)
    assert t.committable() == {"p0": 0, "p1": 41}


def test_an_offset_already_committed_is_not_offered_again() -> None:
    t = OffsetTracker[str]()
    t.started("p0", 0)
    t.finished("p0", 0)
    t.mark_committed(t.committable())
    assert t.committable() == {}
    t.started("p0", 1)
    assert t.committable() == {}  # still 1: offset 1 is in flight, and 1 was committed
    t.finished("p0", 1)
    assert t.committable() == {"p0": 2}


def test_a_forgotten_partition_is_neither_offered_nor_revived_by_a_late_finish() -> None:
    t = OffsetTracker[str]()
    t.started("p0", 3)
    t.forget("p0")
    t.finished("p0", 3)  # a request of a revoked partition finishing late
    assert t.committable() == {}
    t.mark_committed({"p0": 4})
    assert t.committable() == {}


def test_a_partition_assigned_again_starts_from_what_is_fetched_again() -> None:
    t = OffsetTracker[str]()
    t.started("p0", 7)
    t.forget("p0")
    t.started("p0", 7)  # fetched again from the committed offset after the rebalance
    assert t.committable() == {"p0": 7} and t.in_flight == 1 and t.pending("p0") == 1


def test_in_flight_counts_every_partition() -> None:
    t = OffsetTracker[str]()
    t.started("p0", 0)
    t.started("p0", 1)
    t.started("p1", 0)
    t.finished("p0", 0)
    assert t.in_flight == 2
