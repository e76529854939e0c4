"""What every benchmark shares: machine facts, percentiles, result files, a printed table."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

__all__ = ["RESULTS", "machine", "percentile", "summarize", "table", "write_result"]

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    except (OSError, IndexError):
        java = ""
    from importlib.metadata import version

    from devtools.kafka_broker import KAFKA_VERSION

    return {
        "cores": os.cpu_count(), "cpu_model": cpu, "python": platform.python_version(), "java": java,
        "kafka": KAFKA_VERSION, "load_average": os.getloadavg(),
        "packages": {p: version(p) for p in ("faust-streaming", "aiokafka", "aiohttp", "orjson", "python-liquid")},
    }


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarize(values: Sequence[float]) -> dict[str, float]:
    return {"count": len(values), "p50": percentile(values, 50), "p99": percentile(values, 99),
            "p999": percentile(values, 99.9), "max": max(values) if values else float("nan")}


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    path = RESULTS / f"{stamp}-{name}.json"
    path.write_bytes(orjson.dumps({"name": name, "date": stamp, "machine": machine(), **payload},
                                  option=orjson.OPT_INDENT_2))
    return path


def table(rows: list[tuple[str, str]], title: str) -> str:
    width = max(len(k) for k, _ in rows) if rows else 10
    lines = [title, "-" * len(title)]
    lines += [f"{k.ljust(width)}  {v}" for k, v in rows]
    return "\n".join(lines)
