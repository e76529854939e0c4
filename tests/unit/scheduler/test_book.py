"""The scheduler's pure bookkeeping: loading gates firing, cancels win, claims, rebalances."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest

from services.scheduler.book import Applied, TimerBook
from shared.messages import ScheduleTimer, encode

NOW = 1_700_000_000.0
SID = "FN" + "1" * 32
ROUTE = "FW" + "2" * 32 + ":+15550001111"


def value(timer_id: str, due: float, token: str = "5") -> bytes:
    return encode(ScheduleTimer(timer_id, SID, ROUTE, token, due))


def live_book(*partitions: int) -> TimerBook:
    book = TimerBook()
    book.assign(partitions or (0,), NOW, {})
    for p in partitions or (0,):
        book.set_end(p, 0)
    return book


def fired(book: TimerBook, now: float) -> list[str]:
    return [c.timer.timer_id for c in book.pop_due(now)]


# -- loading ------------------------------------------------------------------------------------


def test_a_partition_fires_nothing_until_its_position_reaches_the_end_offset() -> None:
    book = TimerBook()
    book.assign([0], NOW, {})
    book.set_end(0, 3)
    book.apply(0, 0, b"TMa", value("TMa", NOW - 10))
    assert book.loading() == [0] and fired(book, NOW) == []
    assert book.caught_up(0, 1) is False
    book.apply(0, 1, b"TMb", value("TMb", NOW - 5))
    book.apply(0, 2, b"TMc", value("TMc", NOW + 60))
    assert book.caught_up(0, 3) is True
    assert fired(book, NOW) == ["TMa", "TMb"]


def test_a_cancel_read_while_loading_means_the_timer_never_fires() -> None:
    book = TimerBook()
    book.assign([0], NOW, {})
    book.set_end(0, 2)
    book.apply(0, 0, b"TMa", value("TMa", NOW - 10))  # came due while the scheduler was down…
    book.apply(0, 1, b"TMa", None)  # …but was cancelled
    book.caught_up(0, 2)
    assert fired(book, NOW) == [] and book.pending() == 0


def test_loaded_means_position_reaches_the_end_even_when_compaction_left_offset_gaps() -> None:
    book = TimerBook()
    book.assign([0], NOW, {})
    book.set_end(0, 100)
    book.apply(0, 7, b"TMa", value("TMa", NOW - 1))  # offsets 0-6 and 8-99 were compacted away
    assert book.loading() == [0]  # last offset + 1 = 8 is not the end…
    assert book.caught_up(0, 100) is True  # …the consumer's position is
    assert fired(book, NOW) == ["TMa"]


def test_an_empty_partition_is_live_as_soon_as_its_end_offset_is_known() -> None:
    book = TimerBook()
    book.assign([0, 1], NOW, {0: 0, 1: 40})
    assert not book.all_live() and book.unsized() == [0, 1]
    book.set_end(0, 0)
    book.set_end(1, 40)  # everything before 40 was deleted: nothing to read
    assert book.all_live() and book.unsized() == []


def test_a_record_at_an_offset_already_applied_is_skipped() -> None:
    book = live_book(0)
    assert book.apply(0, 4, b"TMa", value("TMa", NOW + 1)) == Applied.SCHEDULED
    assert book.apply(0, 5, b"TMa", None) == Applied.CANCELLED
    assert book.apply(0, 4, b"TMa", value("TMa", NOW + 1)) == Applied.SKIPPED  # re-fetched after a seek
    assert book.pending() == 0


@pytest.mark.parametrize("payload", [
    b"not json", orjson.dumps({"kind": "http_request"}), orjson.dumps({"kind": "timer", "due_at": "soon"}),
    orjson.dumps({"kind": "timer", "due_at": 1.0, "execution_sid": 3, "route": "r", "token": "t"}),
    orjson.dumps({"kind": "timer", "due_at": 1.0, "route": "r", "token": "t"}), b"[1]",
], ids=["garbage", "other-kind", "bad-due", "non-string-field", "missing-field", "not-an-object"])
def test_a_record_that_is_not_a_schedule_timer_is_counted_invalid_and_changes_nothing(payload: bytes) -> None:
    book = live_book(0)
    assert book.apply(0, 0, b"TMa", payload) == Applied.INVALID
    assert book.pending() == 0
    assert book.partitions[0].next_offset == 1


def test_a_timer_too_big_to_store_is_invalid_and_forgets_the_older_value() -> None:
    book = live_book(0)
    book.apply(0, 0, b"TMa", value("TMa", NOW + 1))
    huge = encode(ScheduleTimer("TMa", SID, "r" * 70000, "5", NOW + 1))
    assert book.apply(0, 1, b"TMa", huge) == Applied.INVALID
    assert book.pending() == 0


def test_a_batch_of_records_is_tallied() -> None:
    @dataclass
    class Record:
        offset: int
        key: bytes | None
        value: bytes | None

    book = live_book(0)
    tally = book.apply_records(0, [Record(0, b"TMa", value("TMa", NOW)), Record(1, b"TMb", value("TMb", NOW)),
                                   Record(2, b"TMa", None), Record(3, b"TMc", b"junk"), Record(4, None, b"x"),
                                   Record(5, b"TMz", None)])
    assert (tally.scheduled, tally.cancelled, tally.invalid) == (2, 1, [3])
    assert book.pending() == 1 and book.partitions[0].next_offset == 6
    assert book.apply_records(7, [Record(0, b"TMa", value("TMa", NOW))]).scheduled == 0  # not ours


def test_a_key_that_is_not_utf8_is_invalid_and_a_unicode_one_fires() -> None:
    book = live_book(0)
    assert book.apply(0, 0, b"\xff\xfe", value("x", NOW)) == Applied.INVALID
    key = "TM-ü".encode()
    assert book.apply(0, 1, key, value("TM-ü", NOW)) == Applied.SCHEDULED
    assert fired(book, NOW) == ["TM-ü"]


def test_records_of_a_partition_not_owned_are_skipped() -> None:
    book = live_book(0)
    assert book.apply(1, 0, b"TMa", value("TMa", NOW)) == Applied.SKIPPED


# -- firing, claims and cancels -------------------------------------------------------------------


def test_a_delivered_fire_is_tombstoned_and_our_own_tombstone_is_a_noop() -> None:
    book = live_book(0)
    book.apply(0, 0, b"TMa", value("TMa", NOW - 1))
    [claim] = book.pop_due(NOW)
    assert book.begin_send(claim)
    assert book.finish(claim, delivered=True) is True
    assert book.apply(0, 1, b"TMa", None) == Applied.NOOP


def test_a_cancel_read_after_the_pop_but_before_the_send_withdraws_the_fire() -> None:
    book = live_book(0)
    book.apply(0, 0, b"TMa", value("TMa", NOW - 1))
    [claim] = book.pop_due(NOW)
    assert book.apply(0, 1, b"TMa", None) == Applied.CANCELLED
    assert book.begin_send(claim) is False
    assert book.finish(claim, delivered=False) is False
    assert fired(book, NOW + 100) == []


def test_a_cancel_read_after_the_send_cannot_stop_it_and_needs_no_tombstone_from_us() -> None:
    book = live_book(0)
    book.apply(0, 0, b"TMa", value("TMa", NOW - 1))
    [claim] = book.pop_due(NOW)
    assert book.begin_send(claim)
    assert book.apply(0, 1, b"TMa", None) == Applied.NOOP  # too late: the processor drops it by token
    assert book.finish(claim, delivered=True) is False


def test_a_newer_value_read_before_the_send_replaces_the_claimed_timer() -> None:
    book = live_book(0)
    book.apply(0, 0, b"TMa", value("TMa", NOW - 1))
    [claim] = book.pop_due(NOW)
    book.apply(0, 1, b"TMa", value("TMa", NOW + 30, token="9"))
    assert book.begin_send(claim) is False
    assert fired(book, NOW) == []
    assert [(c.timer.token, c.timer.due_at) for c in book.pop_due(NOW + 30)] == [("9", NOW + 30)]


def test_a_newer_value_read_while_sending_is_not_deleted_by_our_tombstone() -> None:
    book = live_book(0)
    book.apply(0, 0, b"TMa", value("TMa", NOW - 1))
    [claim] = book.pop_due(NOW)
    assert book.begin_send(claim)
    book.apply(0, 1, b"TMa", value("TMa", NOW + 30, token="9"))
    assert book.finish(claim, delivered=True) is False
    assert book.pending() == 1


def test_a_failed_fire_goes_back_and_fires_again() -> None:
    book = live_book(0)
    book.apply(0, 0, b"TMa", value("TMa", NOW - 1))
    [claim] = book.pop_due(NOW)
    assert book.begin_send(claim)
    assert book.finish(claim, delivered=False) is False
    assert fired(book, NOW) == ["TMa"]


def test_due_timers_of_several_partitions_all_fire_but_not_the_future_ones() -> None:
    book = live_book(0, 1, 2)
    book.apply(0, 0, b"TMa", value("TMa", NOW - 1))
    book.apply(1, 0, b"TMb", value("TMb", NOW - 2))
    book.apply(2, 0, b"TMc", value("TMc", NOW + 1))
    assert book.next_due() == NOW - 2
    assert sorted(fired(book, NOW)) == ["TMa", "TMb"]
    assert book.next_due() == NOW + 1


def test_pop_due_claims_at_most_limit_timers() -> None:
    book = live_book(0, 1)
    for i in range(10):
        book.apply(i % 2, i // 2, f"TM{i}".encode(), value(f"TM{i}", NOW - i))
    assert len(book.pop_due(NOW, limit=7)) == 7
    assert len(book.pop_due(NOW, limit=7)) == 3


# -- rebalancing ----------------------------------------------------------------------------------


def test_revocation_stops_firing_at_once_and_drops_unsent_claims() -> None:
    book = live_book(0, 1)
    book.apply(0, 0, b"TMa", value("TMa", NOW - 1))
    book.apply(0, 1, b"TMb", value("TMb", NOW - 1))
    book.apply(1, 0, b"TMc", value("TMc", NOW - 1))
    claims = {c.timer.timer_id: c for c in book.pop_due(NOW, limit=2) if c.partition == 0}
    book.apply(0, 2, b"TMd", value("TMd", NOW - 1))
    sent = next(iter(claims.values()))
    assert book.begin_send(sent)
    book.revoke([0], NOW)
    assert all(c.partition == 1 for c in book.pop_due(NOW))
    unsent = [c for c in claims.values() if c is not sent]
    assert all(book.begin_send(c) is False for c in unsent)
    assert book.finish(sent, delivered=True) is True  # its tombstone must reach the next owner


def test_a_partition_reassigned_right_after_revocation_resumes_where_it_stopped() -> None:
    book = live_book(0, 1)
    book.apply(0, 0, b"TMa", value("TMa", NOW + 60))
    book.apply(0, 1, b"TMb", value("TMb", NOW + 60))
    book.revoke([0, 1], NOW)
    seek = book.assign([0], NOW + 5, {0: 0})
    assert seek == {0: 2}
    assert list(book.partitions) == [0]  # partition 1 went elsewhere: forgotten
    book.set_end(0, 3)
    book.apply(0, 2, b"TMa", None)  # written by the other owner meanwhile
    assert book.caught_up(0, 3)
    assert fired(book, NOW + 60) == ["TMb"]


def test_a_timer_claimed_but_not_sent_when_its_partition_was_revoked_fires_after_the_partition_comes_back() -> None:
    book = live_book(0)
    book.apply(0, 0, b"TMa", value("TMa", NOW - 1))
    [claim] = book.pop_due(NOW)
    book.revoke([0], NOW)  # an eager rebalance: everything is revoked, then mostly given back
    assert book.begin_send(claim) is False
    assert book.assign([0], NOW + 1, {0: 0}) == {0: 1}  # resumes after TMa's record: the index must still hold it
    book.set_end(0, 1)
    assert fired(book, NOW + 1) == ["TMa"]


def test_a_fire_that_failed_after_its_partition_was_revoked_fires_after_the_partition_comes_back() -> None:
    book = live_book(0)
    book.apply(0, 0, b"TMa", value("TMa", NOW - 1))
    [claim] = book.pop_due(NOW)
    assert book.begin_send(claim)
    book.revoke([0], NOW)
    assert book.finish(claim, delivered=False) is False
    book.assign([0], NOW + 1, {0: 0})
    book.set_end(0, 1)
    assert fired(book, NOW + 1) == ["TMa"]


def test_a_partition_reassigned_after_the_reuse_window_is_read_again_from_the_beginning() -> None:
    book = live_book(0)
    book.apply(0, 0, b"TMa", value("TMa", NOW + 60))
    book.revoke([0], NOW)
    assert book.assign([0], NOW + book.reuse_seconds + 1, {0: 0}) == {0: 0}
    assert book.pending() == 0


def test_a_partition_whose_log_start_moved_past_our_position_is_read_again() -> None:
    book = live_book(0)
    book.apply(0, 0, b"TMa", value("TMa", NOW + 60))
    book.revoke([0], NOW)
    assert book.assign([0], NOW, {0: 5}) == {0: 5}
    assert book.pending() == 0


def test_assigning_the_same_partitions_again_is_idempotent() -> None:
    book = live_book(0)
    book.apply(0, 0, b"TMa", value("TMa", NOW + 60))
    assert book.assign([0], NOW, {0: 0}) == {0: 1}
    book.set_end(0, 1)
    assert book.pending() == 1 and book.all_live()


def test_records_applied_while_loading_are_counted_for_the_recovery_log() -> None:
    book = TimerBook()
    book.assign([0], NOW, {})
    book.set_end(0, 2)
    book.apply(0, 0, b"TMa", value("TMa", NOW + 5))
    assert book.apply(0, 1, b"TMa", None) == Applied.CANCELLED
    assert book.partitions[0].loaded_records == 2
