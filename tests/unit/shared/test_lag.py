"""Consumer lag arithmetic (shared/lag.py): end offset minus the group's position, per partition, summed."""

from __future__ import annotations

import pytest

from shared import metrics
from shared.lag import ENGINE_GROUPS, partition_lag, topic_lag


@pytest.mark.parametrize(("end", "committed", "start", "lag"), [
    (100, 40, 0, 60),
    (100, 100, 0, 0),
    (100, None, 0, 100),
    (100, -1, 0, 100),
    (100, None, 30, 70),
    (100, 10, 30, 70),
    (0, None, 0, 0),
    (5, 9, 0, 0),
], ids=["behind", "caught-up", "never-committed-counts-from-start", "negative-offset-means-none",
        "never-committed-after-retention", "committed-below-retention-start", "empty-partition",
        "committed-past-end-is-never-negative"])
def test_partition_lag_is_end_minus_the_position_the_group_would_read_from(end: int, committed: int | None,
                                                                           start: int, lag: int) -> None:
    assert partition_lag(end, committed, start) == lag


def test_topic_lag_sums_every_partition_including_ones_the_group_never_committed() -> None:
    assert topic_lag({0: 10, 1: 20, 2: 5}, {0: 10, 1: 15}, {0: 0, 1: 0, 2: 1}) == 0 + 5 + 4


def test_the_engine_groups_are_the_processor_on_events_and_the_http_worker_on_http_requests() -> None:
    assert [(g.group, g.topic) for g in ENGINE_GROUPS] == [
        ("switchboard-processor", "events"), ("switchboard-http-worker", "http-requests")]


@pytest.mark.parametrize(("widget_type", "label"), [
    ("make-http-request", "make-http-request"), ("trigger", "trigger"), ("my-custom-thing", "other"), ("", "other")],
    ids=["studio-type", "trigger", "unknown-type", "empty"])
def test_a_widget_type_outside_studios_catalogue_is_labelled_other(widget_type: str, label: str) -> None:
    assert metrics.widget_type_label(widget_type) == label
