"""Which revision an execution runs is fixed when it starts; a revision that disappears ends it cleanly."""

from __future__ import annotations

from typing import Any

from services.processor.sprint import Env
from shared.flow import FlowDefinition

from .harness import FLOW_SID, Harness, flow_of


def _revision(leaf: str) -> FlowDefinition:
    """Trigger → call (Make HTTP Request) → ``leaf`` (Set Variables ``rev`` = ``leaf``)."""
    return flow_of(
        {"name": "call", "type": "make-http-request", "properties": {"method": "GET", "url": "http://svc/x"},
         "transitions": [{"event": "success", "next": leaf}, {"event": "failed", "next": leaf}]},
        {"name": leaf, "type": "set-variables", "properties": {"variables": [{"key": "rev", "value": leaf}]},
         "transitions": [{"event": "next"}]})


class Revisions(Harness):
    """A harness whose flow catalog holds several revisions of one flow, as the processor's does."""

    def __init__(self, revisions: dict[int, FlowDefinition]) -> None:
        super().__init__(revisions[1])
        self.revisions = revisions

    def env(self, offset: int = -1) -> Env:
        def flows(sid: str, revision: int) -> FlowDefinition | None:
            return self.revisions.get(revision) if sid == FLOW_SID else None
        return Env(now=self.now, settings=self.settings, flows=flows, offset=offset, committed=self.committed)


def test_an_execution_keeps_running_the_revision_it_started_on_after_a_new_one_is_published() -> None:
    h = Revisions({1: _revision("first")})
    [request] = h.requests(h.start())
    h.revisions[2] = _revision("second")  # published while the execution waits on its HTTP call
    h.result(request, 200, "{}")
    assert h.path() == [("incomingRequest", "Trigger", "call"), ("success", "call", "first"),
                        ("next", "first", "Ended")]
    record = h.record()
    assert (record.revision, record.status, record.context["flow"]["variables"]) == (1, "ended", {"rev": "first"})


def test_an_execution_whose_revision_is_gone_ends_failed_with_20404_and_takes_no_step() -> None:
    h = Revisions({1: _revision("first")})
    [request] = h.requests(h.start())
    del h.revisions[1]  # the flow was deleted while the execution waited
    outcome = h.result(request, 200, "{}")
    record: Any = h.record()
    assert (record.status, record.end_reason) == ("ended", "failed")
    assert record.context["error"] == {
        "code": 20404, "message": "the flow revision this execution runs is gone (the flow was deleted)"}
    assert h.path() == [("incomingRequest", "Trigger", "call")]
    assert not h.requests(outcome)
