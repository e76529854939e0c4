"""Where a restarted ingress resumes reading the history topic (pure)."""

from __future__ import annotations

import pytest

from services.ingress.history import resume_positions


@pytest.mark.parametrize(("stored", "begins", "ends", "expected"), [
    ({}, {0: 0, 1: 0}, {0: 5, 1: 0}, {0: 0, 1: 0}),
    ({0: 4, 1: 2}, {0: 0, 1: 0}, {0: 9, 1: 2}, {0: 4, 1: 2}),
    ({0: 1}, {0: 3}, {0: 9}, {0: 3}),
    ({0: 12}, {0: 0}, {0: 9}, None),
], ids=["fresh-store-reads-everything", "resumes-at-the-stored-offsets",
        "records-removed-by-retention-are-skipped", "offsets-beyond-the-end-mean-another-topic-rebuild"])
def test_resume_positions(stored: dict[int, int], begins: dict[int, int], ends: dict[int, int],
                          expected: dict[int, int] | None) -> None:
    assert resume_positions(stored, begins, ends) == expected
