"""The flow model parses every real Studio export and rejects broken shapes with Studio's paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.flow import FlowDefinitionError, parse_definition
from tests.conftest import CONFORMANCE, FIXTURES, corpus_files, require_conformance

FLOWS = corpus_files(CONFORMANCE) + [pytest.param(p, id=p.stem) for p in sorted(FIXTURES.glob("*.json"))]


def test_the_conformance_folder_holds_the_known_exports() -> None:
    assert len(list(require_conformance().glob("*.json"))) >= 20, f"expected the real exports in {CONFORMANCE}"


@pytest.mark.parametrize("path", FLOWS)
def test_every_conformance_flow_parses(path: Path) -> None:
    raw = json.loads(path.read_text())
    flow = parse_definition(raw)
    assert flow.initial_state in flow.states
    assert len(flow.states) == len(raw["states"])
    for state in raw["states"]:
        parsed = flow.state(state["name"])
        assert parsed.type == state["type"]
        assert [t.event for t in parsed.transitions] == [t["event"] for t in state["transitions"]]


@pytest.mark.parametrize(
    "definition,path",
    [
        ({"states": [{"name": "Trigger", "type": "trigger"}]}, "#/initial_state"),
        ({"initial_state": "Trigger", "states": []}, "#/states"),
        ({"initial_state": "Nope", "states": [{"name": "Trigger", "type": "trigger"}]}, "#/initial_state"),
        ({"initial_state": "Trigger", "states": [{"name": "Trigger", "type": "trigger"}, {"name": "Trigger", "type": "trigger"}]},
         "#/states/1/name"),
        ({"initial_state": "Trigger", "states": [{"name": "Trigger", "type": "trigger",
                                                  "transitions": [{"event": "incomingRequest", "next": "ghost"}]}]},
         "#/states/0/transitions/0/next"),
        ({"initial_state": "Trigger", "flags": {}, "states": [{"name": "Trigger", "type": "trigger"}]},
         "#/flags/allow_concurrent_calls"),
    ],
    ids=["missing initial_state", "no states", "unknown initial_state", "duplicate name", "unknown transition target",
         "flags without allow_concurrent_calls"],
)
def test_shape_errors_name_the_property_path(definition: dict, path: str) -> None:
    with pytest.raises(FlowDefinitionError) as info:
        parse_definition(definition)
    assert path in [issue.property_path for issue in info.value.issues]
    assert info.value.code == 81022
