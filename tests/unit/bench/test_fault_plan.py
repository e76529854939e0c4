"""The fault suite's schedule and verdicts (bench/faults): pure parts, no cluster."""

from __future__ import annotations

import random

from bench.faults.flows import HTTP
from bench.faults.injector import FAULT_KINDS, plan
from bench.faults.verify import _problems
from bench.faults.workload import Started


def test_a_round_injects_every_fault_kind_and_kills_every_replica_and_is_seeded() -> None:
    faults = plan(random.Random(7), replicas=2, quick=False)
    assert {f.kind for f in faults} == set(FAULT_KINDS)
    assert sorted(f.target for f in faults if f.kind == "kill") == sorted(
        f"{s}-{n}" for s in ("processor", "http_worker", "scheduler", "ingress") for n in (0, 1))
    assert [(f.kind, f.target) for f in plan(random.Random(7), 2, False)] == [(f.kind, f.target) for f in faults]


def test_the_quick_round_kills_one_replica_of_each_service() -> None:
    kills = [f.target.rsplit("-", 1)[0] for f in plan(random.Random(1), 2, quick=True) if f.kind == "kill"]
    assert sorted(kills) == ["http_worker", "ingress", "processor", "scheduler"]


def _verdict(path: list[tuple[str, str, str]], requests: dict[str, set[str]]) -> list[str]:
    steps = [{"sid": f"ST{n}"} for n in range(len(path))]
    return [what for what, _ in _problems("http", path, HTTP.path, steps, requests, HTTP.requests, [], (),
                                          Started("http", "+1", 0.0))]


def test_a_step_recorded_twice_a_missing_request_and_a_new_idempotency_key_are_told_apart() -> None:
    both = {"1": {"k1"}, "2": {"k2"}}
    assert _verdict(HTTP.path, both) == []
    assert _verdict(HTTP.path + [HTTP.path[-1]], both) == ["duplicated_steps"]
    assert _verdict(HTTP.path[:-1], both) == ["lost"]
    assert _verdict(HTTP.path, {"1": {"k1"}}) == ["lost"]
    assert _verdict(HTTP.path, {"1": {"k1", "k1b"}, "2": {"k2"}}) == ["duplicated_steps"]


def test_groups_are_settled_only_when_each_is_stable_with_every_replica_as_a_member() -> None:
    from bench.faults.settle import GroupState, expected_groups, unsettled
    from shared.settings import Settings

    expected = expected_groups(Settings(event_streams=True), {"processor": 2, "http_worker": 2, "scheduler": 2})
    assert expected == {"switchboard-processor": 2, "switchboard-http-worker": 2, "switchboard-event-streams": 2,
                        "switchboard.scheduler": 2, "switchboard.history-writer": 0}
    without_relay = expected_groups(Settings(event_streams=False), {"http_worker": 2})
    assert without_relay["switchboard-event-streams"] == 0  # Event Streams off: the http-workers run no relay
    with_postgres = expected_groups(Settings(history_store="postgres"), {"ingress": 2})
    assert with_postgres["switchboard.history-writer"] == 2  # the ingress replicas write the shared copy as a group
    stable = [GroupState(group, "Stable", members) for group, members in expected.items()]
    assert unsettled(stable, expected) == []
    joining = [*stable[:1], GroupState("switchboard-http-worker", "PreparingRebalance", 2), *stable[2:]]
    assert unsettled(joining, expected) == ["switchboard-http-worker: PreparingRebalance with 2 of 2 members"]
    one_short = [GroupState("switchboard-processor", "Stable", 1), *stable[1:]]
    assert unsettled(one_short, expected) == ["switchboard-processor: Stable with 1 of 2 members"]
    assert unsettled(stable[1:], expected) == ["switchboard-processor: not described"]
    assert unsettled([], {"switchboard-processor": 0}) == []  # a service with no replica is not waited for


def test_a_result_file_becomes_one_table_row_with_faults_counted_by_kind() -> None:
    from bench.faults.table import row

    result = {"quick": False, "history_store": "sqlite", "seed": 3, "rate": 8.0, "executions": 2104,
              "faults": [{"kind": "kill"}, {"kind": "kill"}, {"kind": "pause"}], "lost": 0, "duplicated_steps": 0,
              "stuck": 0, "wrong_end": 0, "webhook_errors": 1, "rest_errors": 0, "cut_by_ingress_kill": 2,
              "rest_retried": 2, "consumer_lag": {"a": 0, "b": 0}, "duration_seconds": 401.4}
    assert row("x.json", result) == ("| full | 3 | 8.0 | 2,104 | 3 (2 kill, 1 pause) | 0 | 0 | 0 | 0 | 1 | 0 | 2 | 2 "
                                     "| 0 | 401 s | `x.json` |")
