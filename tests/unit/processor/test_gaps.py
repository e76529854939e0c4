"""Skipped events are found by their offsets: within a generation every offset of a partition comes in order."""

from __future__ import annotations

import pytest

from services.processor.gaps import GapDetector

TP = ("switchboard.events", 4)


@pytest.mark.parametrize(("case", "seen", "committed", "offset", "gap"), [
    ("the next offset is no gap", [(1, 10)], 5, 11, None),
    ("offsets skipped after the last one seen", [(1, 10)], 5, 14, (11, 14)),
    ("a record below the last one seen is a replay (faust sought back), not a gap", [(1, 10)], 5, 7, None),
    ("the first record of a generation at the committed offset", [], 11, 11, None),
    ("the first record of a generation past the committed offset: the ones before were skipped", [], 11, 14,
     (11, 14)),
    ("the first record below the committed offset (faust's own seek) is no gap", [], 11, 9, None),
    ("nothing committed: the topic's start is expected", [], -1, 3, (0, 3)),
    ("a new generation starts again from the committed offset", [(1, 10)], 20, 20, None),
])
def test_gap_rule(case: str, seen: list[tuple[int, int]], committed: int, offset: int,
                  gap: tuple[int, int] | None) -> None:
    detector = GapDetector()
    for generation, seen_offset in seen:
        detector.missing(TP, generation, seen_offset, -1 if not seen_offset else 0)
    generation = 2 if "new generation" in case else 1
    assert detector.missing(TP, generation, offset, committed) == gap, case


def test_after_a_gap_the_detector_continues_from_the_record_that_revealed_it() -> None:
    detector = GapDetector()
    detector.missing(TP, 1, 10, 10)
    assert detector.missing(TP, 1, 14, 10) == (11, 14)
    assert detector.missing(TP, 1, 15, 10) is None


def test_partitions_are_tracked_apart() -> None:
    detector = GapDetector()
    detector.missing(("t", 0), 1, 10, 10)
    detector.missing(("t", 1), 1, 50, 50)
    assert detector.missing(("t", 0), 1, 11, 10) is None
    assert detector.missing(("t", 1), 1, 53, 50) == (51, 53)
