"""The processor's side of the scheduler contract: a fire counts once, for the wait it was set for.

The scheduler fires at least once (a crash between ``TimerFired`` and its
tombstone fires again; a cancel still in Kafka when the timer comes due cannot
stop it), so every duplicate, stale or misaddressed fire must change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from services.processor.runner import EXPIRY_TOKEN
from shared.messages import EndRequested, ScheduleTimer, TimerFired

from .voice_helpers import NOW, ROUTE, Store, fire, flow, message_event, record, steps, widget

# A conversation parked on a redirect; whichever way it leaves, it parks again on a second redirect, so the
# execution is still active (with a new wait token) when the late fire arrives.
REDIRECT_FLOW = flow(
    widget("away", "add-twiml-redirect", {"return": "back", "timeout": "timed_out"},
           url="https://app.example.com/twiml", timeout="30"),
    widget("back", "set-variables", {"next": "again"}, variables=[{"key": "r", "value": "1"}]),
    widget("timed_out", "set-variables", {"next": "again"}, variables=[{"key": "t", "value": "1"}]),
    widget("again", "add-twiml-redirect", {"return": None, "timeout": None}, url="https://app.example.com/2",
           timeout="60"),
    trigger={"incomingMessage": "away"},
)


def parked() -> tuple[Store, ScheduleTimer, ScheduleTimer]:
    """A conversation parked on a redirect: returns the store, the redirect's timer and the expiry timer."""
    store = Store(REDIRECT_FLOW)
    commands = store.send(message_event()).commands
    timers = [c for c in commands if isinstance(c, ScheduleTimer)]
    redirect = next(t for t in timers if t.token != EXPIRY_TOKEN)
    expiry = next(t for t in timers if t.token == EXPIRY_TOKEN)
    return store, redirect, expiry


def fired(timer: ScheduleTimer, **changes: Any) -> TimerFired:
    fields = dict(timer_id=timer.timer_id, execution_sid=timer.execution_sid, route=timer.route, token=timer.token,
                  due_at=timer.due_at, fired_at=timer.due_at + 0.01) | changes
    return TimerFired(**fields)


def ignored(outcome: Any) -> bool:
    return outcome.records == [] and outcome.commands == [] and outcome.executions == {}


def test_the_fire_for_the_current_wait_takes_the_timeout_transition() -> None:
    store, redirect, _ = parked()
    out = fire(store, redirect)
    assert steps(out) == [("timeout", "away", "timed_out"), ("next", "timed_out", "again")]
    assert store[redirect.execution_sid].wait.widget == "again"


def _duplicate(store: Store, redirect: ScheduleTimer, expiry: ScheduleTimer) -> TimerFired:
    fire(store, redirect)
    return fired(redirect, fired_at=redirect.due_at + 5)  # the scheduler crashed before its tombstone


def _stale_token(store: Store, redirect: ScheduleTimer, expiry: ScheduleTimer) -> TimerFired:
    return fired(redirect, token=str(int(redirect.token) - 1))  # set for an earlier wait


def _other_timer_id(store: Store, redirect: ScheduleTimer, expiry: ScheduleTimer) -> TimerFired:
    return fired(redirect, timer_id="TM" + "0" * 32)


def _unknown_execution(store: Store, redirect: ScheduleTimer, expiry: ScheduleTimer) -> TimerFired:
    return fired(redirect, execution_sid="FN" + "f" * 32)


def _after_the_execution_ended(store: Store, redirect: ScheduleTimer, expiry: ScheduleTimer) -> TimerFired:
    store.send(EndRequested(redirect.execution_sid, ROUTE, NOW + 1))  # cancels both timers…
    return fired(redirect)  # …but the cancel reached the scheduler too late


def _after_the_return(store: Store, redirect: ScheduleTimer, expiry: ScheduleTimer) -> TimerFired:
    store.send(message_event(flow_event="return"))
    return fired(redirect)


def _expiry_replayed(store: Store, redirect: ScheduleTimer, expiry: ScheduleTimer) -> TimerFired:
    store.send(fired(expiry))
    return fired(expiry, fired_at=expiry.due_at + 60)


@pytest.mark.parametrize("make", [
    _duplicate, _stale_token, _other_timer_id, _unknown_execution, _after_the_execution_ended, _after_the_return,
    _expiry_replayed,
], ids=["duplicate-fire", "stale-token", "other-timer-id", "unknown-execution", "after-the-execution-ended",
        "after-the-wait-was-left", "replayed-expiry"])
def test_a_duplicate_stale_or_misaddressed_fire_changes_nothing(
        make: Callable[[Store, ScheduleTimer, ScheduleTimer], TimerFired]) -> None:
    store, redirect, expiry = parked()
    event = make(store, redirect, expiry)
    if make not in (_unknown_execution, _after_the_execution_ended, _expiry_replayed):
        assert store[redirect.execution_sid].status == "active"  # the fire meets a live execution
    before = {sid: state.to_bytes() for sid, state in store.items()}
    assert ignored(store.send(event))
    assert {sid: state.to_bytes() for sid, state in store.items()} == before


def test_the_expiry_fire_ends_a_parked_execution_once() -> None:
    store, redirect, expiry = parked()
    out = store.send(fired(expiry))
    assert record(out).status == "ended" and record(out).end_reason == "expired"
    assert ignored(store.send(fired(expiry)))
    assert ignored(store.send(fired(redirect)))
