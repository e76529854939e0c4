"""What an applied event adds to the processor's metrics and logs (both loops count the same way)."""

from __future__ import annotations

import logging

from shared import metrics
from shared.messages import ExecutionRecord, StepRecord

__all__ = ["count_applied"]

log = logging.getLogger("services.processor.app")  # the logger name the "execution ended" lines always had


def count_applied(kind: str, records: list[ExecutionRecord | StepRecord]) -> None:
    """Count one handled event of ``kind`` and the steps and execution ends it recorded; log each end."""
    metrics.PROCESSOR_EVENTS.labels(kind, "handled").inc()
    for record in records:
        if isinstance(record, StepRecord):
            metrics.STEPS.labels(metrics.widget_type_label(record.type),
                                 record.name if record.name.isalpha() else "limit").inc()
            if record.index == 0:
                metrics.EXECUTIONS_STARTED.labels(record.name).inc()
        elif record.status == "ended":
            metrics.EXECUTIONS_ENDED.labels(record.end_reason or "completed").inc()
            error = record.context.get("error") if isinstance(record.context, dict) else None
            log.info("execution ended", extra={"fields": {
                "flow_sid": record.flow_sid, "execution_sid": record.sid, "reason": record.end_reason or "completed",
                "steps": record.step_count, **({"error_code": error.get("code")} if isinstance(error, dict) else {})}})
