"""The read model behind the Executions and Steps API: the ``history`` topic, held in memory.

The processor publishes a snapshot of each execution and each step as it
happens (compacted topics keyed by sid); every ingress instance reads all of it.
Reads never touch the processor, so they cannot slow the hot path, and they
work the same with any number of processor replicas. Ended executions are kept
for the retention period, then forgotten (and tombstoned by the ingress).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer

from shared.messages import DecodeError, ExecutionRecord, StepRecord, decode

__all__ = ["HistoryStore", "follow_history"]


@dataclass
class HistoryStore:
    executions: dict[str, ExecutionRecord] = field(default_factory=dict)
    steps: dict[str, dict[str, StepRecord]] = field(default_factory=dict)  # execution sid -> step sid -> step
    by_flow: dict[str, set[str]] = field(default_factory=dict)
    _step_owner: dict[str, str] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            return
        sid = key.decode()
        if value is None:
            self._forget(sid)
        else:
            try:
                record = decode(value)
            except DecodeError:
                return
            if isinstance(record, ExecutionRecord):
                current = self.executions.get(record.sid)
                # Records of one execution come in order, but a replay may resend an older one.
                if current is None or (record.step_count, record.date_updated, record.status == "ended") >= (
                        current.step_count, current.date_updated, current.status == "ended"):
                    if current is None or current.status != "ended" or record.status == "ended":
                        self.executions[record.sid] = record
                self.by_flow.setdefault(record.flow_sid, set()).add(record.sid)
            elif isinstance(record, StepRecord):
                self.steps.setdefault(record.execution_sid, {})[record.sid] = record
                self._step_owner[record.sid] = record.execution_sid
        self._changed.set()
        self._changed = asyncio.Event()

    def _forget(self, sid: str) -> None:
        record = self.executions.pop(sid, None)
        if record is not None:
            self.by_flow.get(record.flow_sid, set()).discard(sid)
            return
        owner = self._step_owner.pop(sid, None)
        if owner is not None:
            self.steps.get(owner, {}).pop(sid, None)
            if not self.steps.get(owner):
                self.steps.pop(owner, None)

    def execution(self, sid: str) -> ExecutionRecord | None:
        return self.executions.get(sid)

    def executions_of(self, flow_sid: str) -> Iterator[ExecutionRecord]:
        for sid in self.by_flow.get(flow_sid, ()):
            record = self.executions.get(sid)
            if record is not None:
                yield record

    def steps_of(self, execution_sid: str) -> list[StepRecord]:
        return sorted(self.steps.get(execution_sid, {}).values(), key=lambda s: s.index)

    async def changed(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass


async def follow_history(consumer: AIOKafkaConsumer, store: HistoryStore) -> None:
    tps = list(consumer.assignment())
    ends = await consumer.end_offsets(tps)
    if all(v == 0 for v in ends.values()):
        store.ready.set()
    while True:
        batches = await consumer.getmany(timeout_ms=200, max_records=5000)
        for records in batches.values():
            for record in records:
                store.apply(record.key, record.value)
        if not store.ready.is_set():
            positions = {tp: await consumer.position(tp) for tp in tps}
            if all(positions[tp] >= ends[tp] for tp in tps):
                store.ready.set()
