"""Fixtures shared by every test tier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
CONFORMANCE = ROOT.parent / "shared" / "conformance" / "flows"


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def fixture_flow() -> dict[str, Any]:
    return load_fixture("skeleton_flow.json")
