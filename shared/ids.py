"""Twilio-style SIDs: two-letter prefix plus 32 lowercase hex digits.

Random SIDs name things created from outside (flows, executions); derived SIDs
are a pure function of their parents so that replaying an event after a crash
produces the very same step and request ids (no step appears twice).
"""

from __future__ import annotations

import hashlib
import re
import secrets

__all__ = ["derived_sid", "is_sid", "new_sid"]

_SID = re.compile(r"^[A-Z]{2}[0-9a-f]{32}$")


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def derived_sid(prefix: str, *parts: object) -> str:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()
    return prefix + digest[:32]


def is_sid(value: str, prefix: str) -> bool:
    return value.startswith(prefix) and bool(_SID.match(value))
