"""Idempotent REST creates: a client's token names the execution, so a retried create never runs a flow twice.

A create that carries ``I-Twilio-Idempotency-Token`` (Twilio's header) or ``Idempotency-Key`` (the IETF
draft's) gets an execution sid derived from the account, the flow, the contact (``To``) and the token, instead
of a random one. A retry of that create therefore names the same execution, and:

- if the history already holds it (the first create ran, however long ago, within history retention), the
  retry is answered with it and nothing is sent to the processor;
- if not, the retry's start goes to the same route (flow + contact, so the same processor partition) as the
  first one, and the processor answers a start it has already applied with the execution as it stands
  (``machine._start_rest``: a sid already active or recently ended on the route).

"The history already holds it" is only as good as this replica's copy is fresh: before looking, the ingress
waits (briefly) until its copy has applied everything the history topic held when the request came in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from shared.ids import derived_sid, new_sid

__all__ = ["MAX_TOKEN_LENGTH", "TOKEN_HEADERS", "caught_up", "execution_sid_for", "token_of", "wait_caught_up"]

#: Checked in this order; the first one present is the token.
TOKEN_HEADERS = ("I-Twilio-Idempotency-Token", "Idempotency-Key")
MAX_TOKEN_LENGTH = 256


def token_of(headers: Mapping[str, str]) -> str | None:
    """The create's idempotency token, or None; a blank header counts as none. Raises ValueError if too long."""
    for name in TOKEN_HEADERS:
        value = headers.get(name, "").strip()
        if value:
            if len(value) > MAX_TOKEN_LENGTH:
                raise ValueError(f"{name} must be at most {MAX_TOKEN_LENGTH} characters")
            return value
    return None


def execution_sid_for(account_sid: str, flow_sid: str, contact: str, token: str | None) -> str:
    """A fresh sid without a token; with one, the same sid for every create of that token, flow and contact."""
    if token is None:
        return new_sid("FN")
    return derived_sid("FN", "rest-create", account_sid, flow_sid, contact, token)


def caught_up(applied: Mapping[int, int], ends: Mapping[int, int]) -> bool:
    """Has the store applied (next offset to read, per partition) every record up to ``ends``?"""
    return all(applied.get(partition, 0) >= end for partition, end in ends.items())


async def wait_caught_up(applied: Callable[[], Awaitable[Mapping[int, int]]],
                         ends: Callable[[], Awaitable[Mapping[int, int]]],
                         changed: Callable[[float], Awaitable[None]], timeout: float) -> bool:
    """Wait until ``applied()`` reaches the ``ends()`` read now, at most ``timeout`` seconds; did it?"""
    target = await ends()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not caught_up(await applied(), target):
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        await changed(min(remaining, 0.05))
    return True
