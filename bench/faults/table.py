"""``python -m bench.faults.table FILE...``: the README's table of fault-suite runs, one row per result file."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["row"]

#: Fault kinds in the order the table names them.
_KINDS = (("kill", "kill"), ("kill_broker", "broker"), ("kill_controller", "controller"), ("pause", "pause"),
          ("rebalance", "rebalance"))


def row(name: str, result: dict[str, Any]) -> str:
    """One Markdown row: run, seed, rate, executions, faults by kind, the verdict's counts, lag, duration."""
    kinds = Counter(str(f["kind"]) for f in result["faults"])
    faults = ", ".join(f"{kinds[k]} {label}" for k, label in _KINDS if kinds[k])
    run = ("quick" if result.get("quick") else "full") + (" pg" if result.get("history_store") == "postgres" else "")
    lag = sum(result["consumer_lag"].values())
    cells = [run, result["seed"], result.get("rate", "–"), f"{result['executions']:,}",
             f"{len(result['faults'])} ({faults})", result["lost"], result["duplicated_steps"], result["stuck"],
             result["wrong_end"], result["webhook_errors"], result["rest_errors"],
             result.get("cut_by_ingress_kill", "–"), result.get("rest_retried", "–"), lag,
             f"{result['duration_seconds']:.0f} s", f"`{name}`"]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main(argv: list[str]) -> int:
    print("| run | seed | rate/s | executions | faults | lost | duplicated_steps | stuck | wrong_end | webhook_errors "
          "| rest_errors | cut_by_ingress_kill | rest_retried | lag | duration | file |")
    print("|" + "---|" * 16)
    for path in argv:
        print(row(Path(path).name, json.loads(Path(path).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
