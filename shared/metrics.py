"""Every Prometheus metric Switchboard exports, declared once. Base units, bounded labels."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

__all__ = [
    "BUILD_INFO", "EXECUTIONS_ENDED", "EXECUTIONS_STARTED", "HTTP_WORKER_DURATION", "HTTP_WORKER_REQUESTS",
    "INGRESS_DURATION", "INGRESS_REQUESTS", "KAFKA_PRODUCE_ERRORS", "PROCESSOR_EVENTS", "STEPS",
    "TIMERS_CANCELLED", "TIMERS_FIRED", "TIMERS_LATENESS", "TIMERS_PENDING", "TIMERS_RECOVERY", "WEBHOOK_LATENCY",
]

VERSION = "0.1.0"

BUILD_INFO = Info("switchboard_build", "Switchboard version and component")

INGRESS_REQUESTS = Counter("switchboard_ingress_requests_total", "HTTP requests answered by the ingress",
                           ["route", "method", "status"])
INGRESS_DURATION = Histogram("switchboard_ingress_request_duration_seconds", "Ingress request latency",
                             ["route"], buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15))
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

TIMERS_PENDING = Gauge("switchboard_timers_pending", "Timers waiting to fire")
TIMERS_FIRED = Counter("switchboard_timers_fired_total", "Timers fired")
TIMERS_CANCELLED = Counter("switchboard_timers_cancelled_total", "Timers cancelled")
TIMERS_LATENESS = Histogram("switchboard_timer_lateness_seconds", "How late timers fired",
                            buckets=(.01, .05, .1, .25, .5, 1, 2, 5, 10, 30, 60, 300))
TIMERS_RECOVERY = Gauge("switchboard_timer_recovery_seconds", "Duration of the last timer recovery")

KAFKA_PRODUCE_ERRORS = Counter("switchboard_kafka_produce_errors_total", "Failed Kafka produce calls", ["topic"])
