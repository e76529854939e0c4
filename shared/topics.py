"""The one topic registry: every topic, its partitions, cleanup policy and payload.

``create_topics`` makes them explicitly (auto-creation is never relied on).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.settings import Settings

__all__ = [
    "EVENTS", "FLOWS", "HISTORY", "HTTP_REQUESTS", "PROCESSOR_TABLES", "REPLIES", "STUDIO_EVENTS", "TIMERS",
    "TopicSpec", "all_topics",
    "changelog_topics", "create_topics", "processor_app_id",
]


@dataclass(frozen=True)
class TopicSpec:
    name: str
    compacted: bool
    key: str
    carries: str
    producers: str
    consumers: str

    def partitions(self, settings: Settings) -> int:
        if self.name == REPLIES.name:
            return settings.reply_partitions
        if self.name in (FLOWS.name,):
            return 1  # tiny, read whole by everyone; one partition keeps revisions in order
        return settings.event_partitions


EVENTS = TopicSpec(
    "events",
    False,
    "route (flow sid + contact)",
    "StartExecution, WebhookReceived, HttpResult, TimerFired, EndRequested",
    "ingress, http-worker, scheduler",
    "processor",
)
HTTP_REQUESTS = TopicSpec(
    "http-requests",
    False,
    "execution sid",
    "HttpRequest",
    "processor",
    "http-worker",
)
TIMERS = TopicSpec(
    "timers",
    True,
    "timer id",
    "ScheduleTimer, tombstone = cancel",
    "processor, scheduler",
    "scheduler",
)
REPLIES = TopicSpec(
    "replies",
    False,
    "reply id; partition = ingress instance",
    "Reply",
    "processor",
    "ingress",
)
HISTORY = TopicSpec(
    "history",
    False,
    "execution sid (tombstones: execution or step sid)",
    "HistoryBatch (a sprint's steps + snapshot), tombstones",
    "processor, ingress",
    "ingress",
)
FLOWS = TopicSpec(
    "flows",
    True,
    "flow sid + revision",
    "FlowRecord, tombstones",
    "ingress",
    "ingress, processor",
)

STUDIO_EVENTS = TopicSpec(
    "studio-events",
    False,
    "execution sid",
    "Studio's Event Streams events as CloudEvents JSON (execution started/ended, step ended)",
    "http-worker (event streams relay, from history)",
    "your own consumers (data platforms)",
)


#: The processor's faust tables; their changelogs must have exactly as many partitions as ``events``.
PROCESSOR_TABLES = ("routes",)


def processor_app_id(settings: Settings) -> str:
    return settings.topic_prefix.rstrip(".-_") + "-processor"


def changelog_topics(settings: Settings) -> list[str]:
    """faust names a table's changelog ``<app id>-<table>-changelog``; we create them up front so a
    worker never races topic creation (a missing changelog crashes the agent with PartitionsMismatch)."""
    return [f"{processor_app_id(settings)}-{table}-changelog" for table in PROCESSOR_TABLES]


def all_topics() -> tuple[TopicSpec, ...]:
    return (EVENTS, HTTP_REQUESTS, TIMERS, REPLIES, HISTORY, FLOWS, STUDIO_EVENTS)


def create_topics(settings: Settings) -> list[str]:
    """Create every missing topic; return the names created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, client_id="switchboard-topics")
    try:
        existing = set(admin.list_topics())
        wanted = []
        for spec in all_topics():
            name = settings.topic(spec.name)
            if name in existing:
                continue
            configs = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1",
                       "segment.ms": "3600000"} if spec.compacted else {"retention.ms": str(7 * 24 * 3600 * 1000)}
            if spec is TIMERS:
                # A scheduler rebuilds its timers by reading the whole partition, tombstones included: keep
                # fired/cancelled tombstones 10 minutes (not Kafka's 24 h) and roll segments every 10 minutes so
                # recovery reads live timers, not a day of churn. Safe while loading takes far less than 10 min.
                configs |= {"delete.retention.ms": "600000", "segment.ms": "600000"}
            if spec is HISTORY:
                # Not compacted: an execution's batches share its key, so compaction would drop earlier
                # steps. Time retention = the read model's retention plus a day; deletes are tombstones.
                configs = {"retention.ms": str((settings.history_retention_seconds + 86400) * 1000),
                           "segment.ms": "3600000"}
            wanted.append(NewTopic(name, spec.partitions(settings), settings.replication_factor, topic_configs=configs))
        for name in changelog_topics(settings):
            if name not in existing:
                # Rows of ended routes are deleted (tombstones): roll segments hourly so compaction can drop
                # their records (only closed segments are compacted; the default rolls at 7 days or 1 GB), and
                # keep tombstones an hour, far longer than any recovery takes to read past them.
                wanted.append(NewTopic(name, settings.event_partitions, settings.replication_factor,
                                       topic_configs={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1",
                                                      "segment.ms": "3600000", "delete.retention.ms": "3600000"}))
        if wanted:
            try:
                admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in wanted]
    finally:
        admin.close()
