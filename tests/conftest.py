"""Fixtures shared by every test tier.

Real Studio exports (the conformance corpus) live outside the repository: tests that need them find the
folder through ``SWITCHBOARD_CONFORMANCE_DIR`` (default: ``../shared/conformance/flows`` beside the
checkout, when it exists) and are skipped with one line when it is absent. With
``SWITCHBOARD_REQUIRE_CONFORMANCE=1`` (CI) a missing corpus fails those tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
#: The flow most REST/CLI tests import: written for these tests (Trigger → set variables → split on event type).
APPOINTMENTS = FIXTURES / "appointments_flow.json"


def _conformance_dir() -> Path:
    configured = os.environ.get("SWITCHBOARD_CONFORMANCE_DIR")
    return Path(configured) if configured else ROOT.parent / "shared" / "conformance" / "flows"


#: Where the external corpus of real exports is (it may not exist: see ``require_conformance``).
CONFORMANCE = _conformance_dir()


def conformance_available() -> bool:
    return CONFORMANCE.is_dir() and any(CONFORMANCE.glob("*.json"))


def require_conformance() -> Path:
    """The corpus folder, or skip the calling test (fail instead when CI says the corpus must be there)."""
    if conformance_available():
        return CONFORMANCE
    reason = f"conformance corpus not found at {CONFORMANCE} (set SWITCHBOARD_CONFORMANCE_DIR)"
    if os.environ.get("SWITCHBOARD_REQUIRE_CONFORMANCE") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def corpus_files(folder: Path) -> list[Any]:
    """Parametrize values for every ``*.json`` in ``folder`` (a corpus folder that may be missing).

    A missing folder gives one parameter that skips (or fails under CI), so the absence is reported, not silent.
    """
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if files:
        return [pytest.param(p, id=p.stem) for p in files]
    return [pytest.param(folder / "missing.json", id="corpus-missing",
                         marks=pytest.mark.skipif(os.environ.get("SWITCHBOARD_REQUIRE_CONFORMANCE") != "1",
                                                  reason=f"conformance corpus not found at {folder}"))]


def load_fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def fixture_flow() -> dict[str, Any]:
    return load_fixture("skeleton_flow.json")
