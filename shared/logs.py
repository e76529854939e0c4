"""Structured logs: one JSON object per line, carrying flow and execution ids when known."""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any

import orjson

__all__ = ["bind", "configure_logging", "rebind"]

_fields: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("log_fields", default=None)


def bind(**fields: str) -> contextvars.Token[dict[str, str] | None]:
    """Attach ids (``flow_sid``, ``execution_sid``…) to every log line in this task."""
    merged = dict(_fields.get() or {})
    merged.update({k: v for k, v in fields.items() if v})
    return _fields.set(merged)


def rebind(**fields: str) -> contextvars.Token[dict[str, str] | None]:
    """Replace the ids attached to this task's log lines (a long-lived loop moving to its next event:
    ``bind`` would keep the previous event's ids where the new one has none)."""
    return _fields.set({k: v for k, v in fields.items() if v})


class _JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update(_fields.get() or {})
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            payload.update(extra)
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


def configure_logging(service: str, level: str = "INFO", json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json:
        handler.setFormatter(_JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
