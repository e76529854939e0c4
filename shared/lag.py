"""Consumer lag per group and topic, computed in-process with aiokafka and exported as a gauge.

Lag of a group on a topic = Σ over the topic's partitions of (end offset − the
group's committed offset); a partition the group never committed counts from
the partition's first offset (the groups read from ``earliest``). Answers "is
the processor / the http-worker pool keeping up?" — the signal for scaling the
workers (KEDA reads the same quantity from Kafka).

Which groups: the processor's faust group on ``events`` and the http-worker
group on ``http-requests``. The scheduler is not sampled: it commits no
offsets and re-reads its compacted ``timers`` topic on every assignment, so its
backlog shows as ``switchboard_timers_pending`` and timer lateness instead.
The ingress reads ``replies``/``history``/``flows`` without a group.

Every aiohttp service (ingress, http-worker, scheduler) runs a ``LagMonitor``
for all groups, so lag stays visible while a group's own members are down; the
copies are identical, aggregate them with ``max by (group, topic)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared import metrics
from shared.settings import Settings

__all__ = ["ENGINE_GROUPS", "GroupTopic", "LagMonitor", "partition_lag", "topic_lag"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupTopic:
    group: str
    topic: str  # without the prefix: "events"


#: The consumer groups whose lag means work is waiting (group ids are fixed in the services).
ENGINE_GROUPS: tuple[GroupTopic, ...] = (
    GroupTopic("switchboard-processor", "events"),
    GroupTopic("switchboard-http-worker", "http-requests"),
)


def partition_lag(end: int, committed: int | None, start: int) -> int:
    """Records of one partition the group has not processed yet; never negative.

    ``committed`` is None (or negative) when the group has no offset for the
    partition: it would start from ``start`` (auto.offset.reset=earliest). An
    offset below ``start`` (records deleted by retention) also counts from ``start``.
    """
    position = start if committed is None or committed < 0 else max(committed, start)
    return max(0, end - position)


def topic_lag(ends: Mapping[int, int], committed: Mapping[int, int], starts: Mapping[int, int]) -> int:
    """Sum of ``partition_lag`` over every partition in ``ends`` (partition id -> offset maps)."""
    return sum(partition_lag(end, committed.get(p), starts.get(p, 0)) for p, end in ends.items())


@dataclass
class LagMonitor:
    """Samples ``groups`` every ``settings.lag_sample_seconds`` into ``switchboard_kafka_consumer_lag``."""

    settings: Settings
    groups: Sequence[GroupTopic] = ENGINE_GROUPS
    _admin: AIOKafkaAdminClient | None = None
    _offsets: AIOKafkaConsumer | None = None
    _last: dict[tuple[str, str], int] = field(default_factory=dict)

    async def _clients(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._admin is None or self._offsets is None:
            s = self.settings
            admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap, client_id="switchboard-lag")
            offsets = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap, client_id="switchboard-lag",
                                       group_id=None, enable_auto_commit=False)
            await admin.start()
            await offsets.start()
            self._admin, self._offsets = admin, offsets
        return self._admin, self._offsets

    async def sample(self) -> dict[tuple[str, str], int]:
        """One sample: (group, full topic name) -> lag; also sets the gauge."""
        admin, offsets = await self._clients()
        # Fresh metadata on every sample, so added partitions are counted (aiokafka has no public call).
        cluster = await offsets._client.fetch_all_metadata()  # noqa: SLF001
        result: dict[tuple[str, str], int] = {}
        for gt in self.groups:
            topic = self.settings.topic(gt.topic)
            ids = cluster.partitions_for_topic(topic)
            if not ids:
                continue
            tps = [TopicPartition(topic, p) for p in sorted(ids)]
            ends = await offsets.end_offsets(tps)
            starts = await offsets.beginning_offsets(tps)
            committed = await admin.list_consumer_group_offsets(gt.group, partitions=tps)
            lag = topic_lag({tp.partition: ends[tp] for tp in tps},
                            {tp.partition: meta.offset for tp, meta in committed.items() if tp.topic == topic},
                            {tp.partition: starts[tp] for tp in tps})
            metrics.CONSUMER_LAG.labels(gt.group, topic).set(lag)
            result[(gt.group, topic)] = lag
        self._last = result
        return result

    async def run(self) -> None:
        """Sample forever; a failed sample is counted, logged and retried on the next tick."""
        interval = self.settings.lag_sample_seconds
        if interval <= 0:
            return
        try:
            while True:
                try:
                    await self.sample()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - Kafka hiccups must not stop the service
                    metrics.CONSUMER_LAG_SAMPLE_ERRORS.inc()
                    log.warning("consumer lag sample failed: %s", exc)
                    await self.close()
                await asyncio.sleep(interval)
        finally:
            await self.close()

    async def close(self) -> None:
        admin, offsets = self._admin, self._offsets
        self._admin = self._offsets = None
        for client in (offsets, admin):
            if client is not None:
                try:
                    await client.close() if isinstance(client, AIOKafkaAdminClient) else await client.stop()
                except Exception:  # noqa: BLE001 - closing a broken client
                    pass
