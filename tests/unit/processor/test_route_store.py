"""The batched loop's route rows (route_store.py) and their recovery bookkeeping (recovery.ChangelogFold)."""

from __future__ import annotations

from pathlib import Path

from services.processor.recovery import CHUNK, ChangelogFold
from services.processor.route_store import MemoryRows, RocksRows, open_rows, supersedes
from services.processor.route_sweep import SweepCandidates
from services.processor.state import ExecutionState, RouteState, encode_route_record


def row(applied: int, active: bool = False) -> bytes:
    if not active:
        return encode_route_record(RouteState(recent=["FN0"], applied=applied), {})
    state = ExecutionState("FN1", "FW1", 1, "FW1:+1", "+1", "+2", "x", "request", {}, 0.0, 0.0)
    return encode_route_record(RouteState(active=["FN1"], applied=applied), {"FN1": state})


# -- which changelog record wins ------------------------------------------------------------------


def test_a_newer_row_replaces_the_stored_one_and_an_older_one_is_a_zombies_and_ignored() -> None:
    assert supersedes(None, row(3))
    assert supersedes(row(3), row(3))  # a replay writes the same applied offset again
    assert supersedes(row(3), row(9))
    assert not supersedes(row(9), row(3))


def test_a_tombstone_deletes_only_a_row_that_is_not_newer_than_the_one_it_deleted() -> None:
    assert supersedes(row(5), None, deletes_applied=5)
    assert supersedes(row(5), None, deletes_applied=None)  # faust's tombstones carry nothing: they always apply
    assert not supersedes(row(8, active=True), None, deletes_applied=5)  # a zombie's late delete
    assert supersedes(None, None, deletes_applied=1)


# -- folding a partition's changelog ---------------------------------------------------------------


def test_recovery_keeps_the_newest_row_of_each_key_and_notes_the_idle_ones() -> None:
    rows, candidates = MemoryRows(), SweepCandidates()
    fold = ChangelogFold(0, rows, candidates)
    fold.apply(0, b"a", row(1, active=True))
    fold.apply(1, b"b", row(2))
    fold.apply(2, b"a", row(7))  # a's execution ended
    fold.apply(3, b"a", row(4, active=True))  # a zombie's late row: ignored
    fold.apply(4, None, b"junk")  # not a row
    fold.flush()
    assert rows.get(b"a") == row(7) and rows.get(b"b") == row(2)
    assert rows.changelog_offset == 4
    assert (fold.records, fold.ignored) == (4, 1)
    assert candidates.due(0, committed=100) == [b"b", b"a"]


def test_a_deleted_row_is_not_brought_back_by_a_zombies_late_row_but_a_new_route_is() -> None:
    rows, candidates = MemoryRows(), SweepCandidates()
    fold = ChangelogFold(0, rows, candidates)
    fold.apply(10, b"a", row(6))
    fold.apply(11, b"a", None, [("applied", b"6")])
    fold.apply(12, b"a", row(5, active=True))  # the zombie's, older than what was deleted
    fold.flush()
    assert rows.get(b"a") is None and len(candidates) == 0
    fold.apply(13, b"a", row(40, active=True))  # a later event started the route again
    fold.flush()
    assert rows.get(b"a") == row(40, active=True)


def test_rows_are_written_in_chunks_with_the_offset_of_the_last_record_read() -> None:
    rows = MemoryRows()
    fold = ChangelogFold(0, rows, SweepCandidates())
    for offset in range(CHUNK):
        fold.apply(offset, b"k%d" % offset, row(offset))
    assert fold.due
    fold.flush()
    assert (len(rows), rows.changelog_offset, fold.pending) == (CHUNK, CHUNK - 1, {})


def test_an_empty_tail_leaves_the_store_as_it_was() -> None:
    rows = MemoryRows()
    rows.write({b"a": row(1)}, 9)
    ChangelogFold(0, rows, SweepCandidates()).flush()
    assert (rows.get(b"a"), rows.changelog_offset) == (row(1), 9)


# -- the stores ------------------------------------------------------------------------------------


def test_rocksdb_rows_and_their_changelog_offset_survive_a_reopen(tmp_path: Path) -> None:
    store = open_rows("rocksdb", tmp_path, 3)
    assert isinstance(store, RocksRows) and store.changelog_offset == -1
    store.write({b"a": row(1), b"b": row(2)}, 17)
    store.write({b"a": None}, 18)
    store.close()
    again = RocksRows(tmp_path / "routes-3.db")
    assert (again.get(b"a"), again.get(b"b"), again.changelog_offset) == (None, row(2), 18)
    assert list(again.items()) == [(b"b", row(2))]  # the offset is not a row
    again.close()


def test_an_offset_never_moves_back() -> None:
    rows = MemoryRows()
    rows.write({}, 10)
    rows.write({b"x": row(0)}, 4)
    assert rows.changelog_offset == 10
