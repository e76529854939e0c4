"""ISO-8601 timestamps as Twilio writes them (UTC, ``Z`` suffix)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso8601", "parse_iso8601"]


def iso8601(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso8601(text: str) -> float:
    """Parse ``2024-01-02T03:04:05Z`` (or with an offset, or a bare date)."""
    value = text.strip().replace("Z", "+00:00")
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
