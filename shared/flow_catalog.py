"""Every flow revision, read whole from the compacted ``flows`` topic into memory.

The processor needs a revision's definition to run it and the ingress needs
flows to answer the API; both keep this catalog current with a reader that
never stops. ``wait_for`` lets a consumer of the events topic wait for a flow it
has just heard of (the flow record may still be in flight).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer

from shared.flow import FlowDefinition, FlowDefinitionError, parse_definition
from shared.kafka import follow
from shared.messages import DecodeError, FlowRecord, decode

__all__ = ["FLOW_WAIT_SECONDS", "FlowCatalog", "flow_key", "flow_wait", "follow_flows"]

log = logging.getLogger(__name__)


#: How long after an event was sent its flow may still be on its way to a reader of the flows topic.
FLOW_WAIT_SECONDS = 10.0


def flow_wait(now: float, sent_at: float, budget: float = FLOW_WAIT_SECONDS) -> float:
    """How long to wait for the flow an event names: what is left of ``budget`` since the event was sent.

    The ingress writes a flow before any event that uses it, so a reader that lags sees it within moments;
    an event older than the budget whose flow is still unknown names a flow that does not exist (deleted,
    or a poison record), and waiting for it would only stall its partition.
    """
    return max(0.0, min(budget, sent_at + budget - now))


def flow_key(sid: str, revision: int) -> bytes:
    return f"{sid}/{revision}".encode()


@dataclass
class FlowCatalog:
    records: dict[str, dict[int, FlowRecord]] = field(default_factory=dict)
    _parsed: dict[tuple[str, int], FlowDefinition] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    #: Keys this process wrote and applied ahead of its reader, with the offset the broker gave the write.
    _written: dict[bytes, int] = field(default_factory=dict)

    def apply_written(self, key: bytes, value: bytes | None, offset: int) -> None:
        """Apply a record this process has just written (read-your-writes), before the reader reaches it.

        The reader may still deliver older records of the same key (an update moments earlier): those
        must not replace this one for the moment until the reader catches up, or a fetch right after an
        update would see the previous record (e.g. TestUsers emptied again, a deleted flow back).
        """
        self._written[key] = offset
        self.apply(key, value)

    def apply(self, key: bytes | None, value: bytes | None, offset: int = -1) -> None:
        """Apply one record of the flows topic at ``offset`` (-1: not from the reader; always applied)."""
        if key is None:
            return
        if offset >= 0 and key in self._written:
            if offset < self._written[key]:
                return  # older than what this process wrote and already holds
            del self._written[key]  # the reader has caught up with our write
        sid, _, rev = key.decode().partition("/")
        if value is None:  # tombstone: a deleted flow (every revision gets one)
            revisions = self.records.get(sid, {})
            if rev.isdigit():
                revisions.pop(int(rev), None)
                self._parsed.pop((sid, int(rev)), None)
            if not revisions:
                self.records.pop(sid, None)
        else:
            try:
                record = decode(value)
            except DecodeError:
                log.warning("skipping an undecodable flow record %r", key)
                return
            if not isinstance(record, FlowRecord):
                return
            self.records.setdefault(record.sid, {})[record.revision] = record
            self._parsed.pop((record.sid, record.revision), None)
        self._changed.set()
        self._changed = asyncio.Event()

    def definition(self, sid: str, revision: int) -> FlowDefinition | None:
        cached = self._parsed.get((sid, revision))
        if cached is not None:
            return cached
        record = self.records.get(sid, {}).get(revision)
        if record is None:
            return None
        try:
            parsed = parse_definition(record.definition)
        except FlowDefinitionError:
            return None
        self._parsed[(sid, revision)] = parsed
        return parsed

    def latest(self, sid: str) -> FlowRecord | None:
        revisions = self.records.get(sid)
        return revisions[max(revisions)] if revisions else None

    def latest_published(self, sid: str) -> FlowRecord | None:
        revisions = self.records.get(sid) or {}
        published = [r for r in revisions.values() if r.status == "published"]
        return max(published, key=lambda r: r.revision) if published else None

    def latest_revision(self, sid: str, published: bool) -> int | None:
        """The number of the flow's latest published revision (``published``) or latest revision at all."""
        record = self.latest_published(sid) if published else self.latest(sid)
        return record.revision if record is not None else None

    def test_users(self, sid: str) -> list[str]:
        """The flow's test users (kept on its latest revision's record)."""
        latest = self.latest(sid)
        return [str(u) for u in (latest.test_users or [])] if latest is not None else []

    def revision_for(self, sid: str, contact: str) -> FlowRecord | None:
        """The revision a new execution for ``contact`` runs.

        A test user of the flow runs its latest revision, draft or not; everyone
        else the latest published revision (``None`` if there is none).
        """
        latest = self.latest(sid)
        if latest is None:
            return None
        if contact and contact in self.test_users(sid):
            return latest
        return self.latest_published(sid)

    def revisions(self, sid: str) -> list[FlowRecord]:
        return sorted((self.records.get(sid) or {}).values(), key=lambda r: r.revision, reverse=True)

    def flows(self) -> Iterator[FlowRecord]:
        for sid in self.records:
            latest = self.latest(sid)
            if latest is not None:
                yield latest

    async def wait_for(self, sid: str, revision: int, timeout: float) -> FlowDefinition | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = self.definition(sid, revision)
            if found is not None:
                return found
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return None


async def follow_flows(consumer: AIOKafkaConsumer, catalog: FlowCatalog) -> None:
    """Apply every record of the flows topic to ``catalog``, forever; set ``ready`` once caught up."""
    await follow(consumer, catalog.apply, catalog.ready)
