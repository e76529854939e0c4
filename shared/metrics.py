"""Every Prometheus metric Switchboard exports, declared once. Base units, bounded labels."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram, Info

__all__ = [
    "BUILD_INFO", "CONSUMER_LAG", "CONSUMER_LAG_SAMPLE_ERRORS", "EXECUTIONS_ENDED", "EXECUTIONS_STARTED",
    "EVENT_STREAM_EVENTS",
    "HTTP_WORKER_DURATION", "HTTP_WORKER_REQUESTS", "INGRESS_DURATION", "INGRESS_REQUESTS", "KAFKA_PRODUCE_ERRORS",
    "PROCESSOR_EVENTS", "STEPS", "TIMERS_CANCELLED", "TIMERS_FIRED", "TIMERS_LATENESS", "TIMERS_PENDING",
    "TIMERS_RECOVERY", "WEBHOOK_LATENCY", "watch_delivery", "widget_type_label",
]

T = TypeVar("T")

VERSION = "0.1.0"

BUILD_INFO = Info("switchboard_build", "Switchboard version and component")

INGRESS_REQUESTS = Counter("switchboard_ingress_requests_total", "HTTP requests answered by the ingress",
                           ["route", "method", "status"])
#: ``status_class`` ("2xx", "4xx", "5xx") keeps slow failures (a 503 after the reply budget) apart from fast answers.
INGRESS_DURATION = Histogram("switchboard_ingress_request_duration_seconds", "Ingress request latency",
                             ["route", "status_class"],
                             buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15))
WEBHOOK_LATENCY = Histogram("switchboard_webhook_twiml_seconds", "Webhook received to TwiML answered",
                            ["outcome"], buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15))

EXECUTIONS_STARTED = Counter("switchboard_executions_started_total", "Executions started", ["trigger"])
EXECUTIONS_ENDED = Counter("switchboard_executions_ended_total", "Executions ended", ["reason"])
STEPS = Counter("switchboard_steps_total", "Steps recorded", ["widget_type", "event"])
PROCESSOR_EVENTS = Counter("switchboard_processor_events_total", "Events the processor handled", ["kind", "result"])

HTTP_WORKER_REQUESTS = Counter("switchboard_http_worker_requests_total", "Outbound requests by outcome",
                               ["purpose", "outcome"])
HTTP_WORKER_DURATION = Histogram("switchboard_http_worker_request_duration_seconds", "Outbound request duration",
                                 ["purpose"], buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15))

#: Studio events (Event Streams) by ``destination`` ("kafka", "sink") and ``outcome`` ("published", "delivered",
#: "failed": a sink that refused every retry).
EVENT_STREAM_EVENTS = Counter("switchboard_event_stream_events_total", "Studio events published and delivered",
                              ["destination", "outcome"])

TIMERS_PENDING = Gauge("switchboard_timers_pending", "Timers waiting to fire")
TIMERS_FIRED = Counter("switchboard_timers_fired_total", "Timers fired")
TIMERS_CANCELLED = Counter("switchboard_timers_cancelled_total", "Timers cancelled")
TIMERS_LATENESS = Histogram("switchboard_timer_lateness_seconds", "How late timers fired",
                            buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 300, 3600))
TIMERS_RECOVERY = Gauge("switchboard_timer_recovery_seconds", "Duration of the last timer recovery")
TIMER_PARTITIONS = Gauge("switchboard_timer_partitions", "Timer partitions this scheduler owns", ["state"])
TIMER_RECORDS_INVALID = Counter("switchboard_timer_records_invalid_total", "Timers records that are not ScheduleTimer")

KAFKA_PRODUCE_ERRORS = Counter("switchboard_kafka_produce_errors_total", "Failed Kafka produce calls", ["topic"])
# Every topic's series exists from the start at 0, so rate() and the error-ratio alert see "no errors", not "no data".
for _topic in ("events", "http-requests", "timers", "replies", "history", "flows", "studio-events"):
    KAFKA_PRODUCE_ERRORS.labels(_topic)



def watch_delivery(topic: str, delivery: Awaitable[T]) -> Awaitable[T]:
    """Count ``delivery`` (the future an aiokafka/faust ``send`` returns) in KAFKA_PRODUCE_ERRORS if it fails.

    ``topic`` is the short name ("events"). Returns ``delivery`` so a call site stays one expression.
    """

    def done(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            KAFKA_PRODUCE_ERRORS.labels(topic).inc()

    if isinstance(delivery, asyncio.Future):
        delivery.add_done_callback(done)
    return delivery


#: Records a consumer group has not processed yet (end offset - committed offset, summed over the topic's
#: partitions). Every aiohttp service samples every engine group (shared/lag.py), so the value is there even
#: while the group's own members are down; aggregate with ``max by (group, topic)``.
CONSUMER_LAG = Gauge("switchboard_kafka_consumer_lag", "Records not yet processed by a consumer group",
                     ["group", "topic"])
CONSUMER_LAG_SAMPLE_ERRORS = Counter("switchboard_kafka_consumer_lag_sample_errors_total",
                                     "Failed attempts to sample consumer lag")

#: Studio's widget types; any other ``type`` string in a flow is counted as "other" so a crafted flow cannot
#: create unbounded label values.
STUDIO_WIDGET_TYPES = frozenset({
    "trigger", "send-message", "send-and-wait-for-reply", "say-play", "gather-input-on-call", "split-based-on",
    "set-variables", "make-http-request", "run-function", "connect-call-to", "record-voicemail", "record-call",
    "enqueue-call", "send-to-flex", "run-subflow", "add-twiml-redirect", "fork-stream", "capture-payments",
    "make-outgoing-call", "make-outgoing-call-v1", "make-outgoing-call-v2", "connect-virtual-agent",
    "send-to-auto-pilot",
})


def widget_type_label(widget_type: str) -> str:
    """The ``widget_type`` label value: the type itself if it is one of Studio's, else ``other``."""
    return widget_type if widget_type in STUDIO_WIDGET_TYPES else "other"
