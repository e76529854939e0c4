"""Every execution checked against what its flow must do, from the public API and the far ends' records.

Classification of one started execution (the client's view is in :class:`Started`):
- ``lost``: something the flow must do is missing — no execution, a missing step, HTTP request or message —
  although the client got a success (a client that got an error knows its request may not have taken effect);
- ``duplicated_steps``: a step (or an HTTP request with a new idempotency key, or a message) more than once,
  or a second execution for one start;
- ``stuck``: still active at the end;
- ``wrong_end``: ended, nothing missing or doubled, but not on the flow's path (e.g. a timer fired that
  should not have);
- ``webhook_errors`` / ``rest_errors``: requests through the public URL that got no proper answer from the
  engine; ``cut_by_ingress_kill``: those that were in flight on an ingress replica the moment it was SIGKILLed
  (the balancer answered 502), counted apart because no server answers after SIGKILL. A REST create whose
  first answer failed is retried once with its idempotency token (``rest_retried``); the first answer still
  counts here, and the retried create must still have exactly one execution.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from shared.lag import LagMonitor
from shared.settings import Settings
from tests.integration.messages_api import MessagesApi

from .flows import KINDS
from .workload import Recorder, Started, Workload

__all__ = ["Verdict", "consumer_lag", "verify"]

_BY_NAME = {kind.name: kind for kind in KINDS}


@dataclass
class Verdict:
    lost: int = 0
    duplicated_steps: int = 0
    stuck: int = 0
    wrong_end: int = 0
    webhook_errors: int = 0
    rest_errors: int = 0
    cut_by_ingress_kill: int = 0  # requests in flight on an ingress replica when it was SIGKILLed (balancer: 502)
    rest_retried: int = 0  # REST creates retried with their idempotency token after a first answer that failed
    disturbed: int = 0  # the client saw an error and its execution differs: explained, not counted as a loss
    repeated_requests: int = 0  # HTTP requests sent again with the same Idempotency-Key (allowed)
    findings: list[dict[str, Any]] = field(default_factory=list)

    def add(self, what: str, record: Started, sid: str, detail: Any) -> None:
        setattr(self, what, getattr(self, what) + 1)
        if len(self.findings) < 200:
            self.findings.append({"what": what, "kind": record.kind, "contact": record.contact, "sid": sid,
                                  "client_errors": record.errors[:3], "detail": detail})


async def executions_by_contact(load: Workload, flow_sid: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    url: str | None = f"/v2/Flows/{flow_sid}/Executions?PageSize=1000"
    while url:
        code, body = await load.get(url)
        if code != 200:
            raise RuntimeError(f"listing executions of {flow_sid}: {code} {body}")
        for execution in body["executions"]:
            found[execution["contact_channel_address"]].append(execution)
        url = body["meta"].get("next_page_url")
    return found


async def wait_settled(load: Workload, timeout: float) -> None:
    """Until no execution of the load is active and every start whose client saw no error has its execution
    listed (or ``timeout``): timers and replies may still be on their way, and a start still waiting in Kafka
    for its partition's owner is not listed at all yet."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        active = 0
        listed: set[tuple[str, str]] = set()
        for kind in KINDS:
            listing = await executions_by_contact(load, load.flows[kind.name])
            active += sum(1 for runs in listing.values() for e in runs if e["status"] != "ended")
            listed.update((kind.name, contact) for contact in listing)
        missing = sum(1 for r in load.started if not r.errors and (r.kind, r.contact) not in listed)
        if active == 0 and missing == 0:
            return
        await asyncio.sleep(2)


async def verify(load: Workload, recorder: Recorder, messages: MessagesApi,
                 reference: dict[str, list[tuple[str, str, str]]]) -> Verdict:
    verdict = Verdict()
    listings = {kind.name: await executions_by_contact(load, load.flows[kind.name]) for kind in KINDS}
    requests: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    attempts: Counter[tuple[str, str, str]] = Counter()
    for execution, n, key in recorder.requests:
        requests[execution][n].add(key)
        attempts[(execution, n, key)] += 1
    verdict.repeated_requests = sum(count - 1 for count in attempts.values())
    for record in load.started:
        kind = _BY_NAME[record.kind]
        seen = record.retried + record.errors  # a create retried with its token still saw its first answer
        webhook = record.kind.startswith("call") or any("REST create" not in e for e in seen)
        if record.retried:
            verdict.rest_retried += 1
        if seen:
            if all("upstream failed mid-request" in e for e in seen):
                verdict.cut_by_ingress_kill += 1  # a SIGKILLed ingress drops what it was answering: no server can
            elif webhook:
                verdict.webhook_errors += 1
            else:
                verdict.rest_errors += 1
            if len(verdict.findings) < 200:
                verdict.findings.append({"what": "client_error", "kind": record.kind, "contact": record.contact,
                                         "client_errors": seen[:3], "retried": bool(record.retried)})
        runs = listings[record.kind].get(record.contact, [])
        if not runs:
            if record.errors:
                verdict.disturbed += 1
            else:
                verdict.add("lost", record, record.sid, "no execution for this contact")
            continue
        if len(runs) > 1:
            verdict.add("duplicated_steps", record, record.sid, {"executions": [e["sid"] for e in runs]})
            continue
        run = runs[0]
        sid = run["sid"]
        if run["status"] != "ended":
            if record.errors:  # e.g. the contact's reply was cut with its ingress: the execution rightly waits on
                verdict.disturbed += 1
                verdict.findings.append({"what": "disturbed", "kind": record.kind, "sid": sid,
                                         "client_errors": record.errors[:3], "detail": "still active"})
            else:
                verdict.add("stuck", record, sid, "still active")
            continue
        code, body = await load.get(f"/v2/Flows/{load.flows[record.kind]}/Executions/{sid}/Steps?PageSize=1000")
        steps = list(reversed(body["steps"])) if code == 200 else []
        path = [(s["name"], s["transitioned_from"], s["transitioned_to"]) for s in steps]
        expected = kind.path or reference.get(record.kind, [])
        problems = _problems(kind.name, path, expected, steps, requests.get(sid, {}), kind.requests,
                             [m["body"] for m in messages.messages(record.contact)], kind.messages, record)
        if not problems:
            continue
        what = problems[0][0]
        if record.errors and what != "duplicated_steps":
            verdict.disturbed += 1
            if len(verdict.findings) < 200:
                verdict.findings.append({"what": "disturbed", "kind": record.kind, "sid": sid,
                                         "client_errors": record.errors[:3], "detail": problems})
            continue
        if steps:  # why the execution went that way: the last step's context (e.g. an HTTP widget's error)
            last = steps[-1]["sid"]
            code, context = await load.get(f"/v2/Flows/{load.flows[record.kind]}/Executions/{sid}/Steps/{last}/Context")
            problems.append(("context", {"step": steps[-1]["name"], "context": context if code == 200 else code}))
        verdict.add(what, record, sid, problems)
    return verdict


def _problems(kind: str, path: list[tuple[str, str, str]], expected: list[tuple[str, str, str]],
              steps: list[dict[str, Any]], requests: dict[str, set[str]], wanted_requests: int,
              bodies: list[str], wanted_bodies: tuple[str, ...], record: Started) -> list[tuple[str, Any]]:
    problems: list[tuple[str, Any]] = []
    sids = [s["sid"] for s in steps]
    if len(set(sids)) != len(sids) or _has_repeat(path, expected):
        problems.append(("duplicated_steps", {"path": path}))
    elif path != expected:
        missing = [s for s in expected if s not in path]
        problems.append(("lost" if missing else "wrong_end", {"path": path, "expected": expected}))
    for n in range(1, wanted_requests + 1):
        keys = requests.get(str(n), set())
        if not keys:
            problems.append(("lost", {"http_request_missing": n}))
        elif len(keys) > 1:
            problems.append(("duplicated_steps", {"http_request": n, "idempotency_keys": sorted(keys)}))
    if wanted_bodies and bodies != list(wanted_bodies):
        doubled = len(bodies) > len(wanted_bodies)
        problems.append(("duplicated_steps" if doubled else "lost", {"messages": bodies}))
    if kind == "call_return" and (not record.said or record.said[-1] != "Bye bar"):
        problems.append(("wrong_end", {"said": record.said}))
    problems.sort(key=lambda p: ("duplicated_steps", "lost", "wrong_end").index(p[0]))
    return problems


def _has_repeat(path: list[tuple[str, str, str]], expected: list[tuple[str, str, str]]) -> bool:
    """More of some step than the flow's path has (a step recorded twice)."""
    have, want = Counter(path), Counter(expected)
    return any(count > want.get(step, 0) for step, count in have.items()) and len(path) > len(expected)


async def consumer_lag(bootstrap: str) -> dict[str, int]:
    """Records each engine consumer group has not committed past, summed over its topic's partitions."""
    monitor = LagMonitor(Settings(kafka_bootstrap=bootstrap, lag_sample_seconds=0))
    try:
        return {group: lag for (group, _), lag in (await monitor.sample()).items()}
    finally:
        await monitor.close()
