"""Idempotent REST creates (services/ingress/idempotency.py): the token names the execution."""

from __future__ import annotations

import asyncio

import pytest

from services.ingress.idempotency import caught_up, execution_sid_for, token_of, wait_caught_up
from shared.ids import is_sid


def test_the_same_token_flow_and_contact_name_the_same_execution_and_anything_else_another() -> None:
    sid = execution_sid_for("AC1", "FW1", "+15550001", "token-1")
    assert is_sid(sid, "FN")
    assert execution_sid_for("AC1", "FW1", "+15550001", "token-1") == sid
    others = {execution_sid_for("AC1", "FW1", "+15550001", "token-2"),
              execution_sid_for("AC1", "FW2", "+15550001", "token-1"),
              execution_sid_for("AC1", "FW1", "+15550002", "token-1"),
              execution_sid_for("AC2", "FW1", "+15550001", "token-1")}
    assert sid not in others and len(others) == 4


def test_without_a_token_every_create_gets_a_fresh_sid() -> None:
    assert execution_sid_for("AC1", "FW1", "+1", None) != execution_sid_for("AC1", "FW1", "+1", None)


def test_the_token_is_twilios_header_else_the_ietf_one_and_blank_is_none() -> None:
    assert token_of({"I-Twilio-Idempotency-Token": "a", "Idempotency-Key": "b"}) == "a"
    assert token_of({"Idempotency-Key": " b "}) == "b"
    assert token_of({"I-Twilio-Idempotency-Token": "  "}) is None
    assert token_of({}) is None
    with pytest.raises(ValueError, match="at most 256"):
        token_of({"Idempotency-Key": "x" * 257})


def test_caught_up_means_every_partition_applied_up_to_its_end() -> None:
    assert caught_up({0: 5, 1: 3}, {0: 5, 1: 3})
    assert caught_up({0: 6, 1: 3}, {0: 5, 1: 3})
    assert not caught_up({0: 5, 1: 2}, {0: 5, 1: 3})
    assert not caught_up({0: 5}, {0: 5, 1: 1})  # a partition never applied counts from 0
    assert caught_up({}, {0: 0})


async def test_waiting_for_the_copy_ends_when_it_reaches_the_ends_read_at_the_start() -> None:
    applied = {0: 0}
    ends = {0: 2}
    pulse = asyncio.Event()

    async def changed(timeout: float) -> None:
        await asyncio.wait_for(pulse.wait(), timeout)

    async def apply_two() -> None:
        for offset in (1, 2):
            applied[0] = offset
            pulse.set()
            pulse.clear()
            await asyncio.sleep(0)

    async def read_applied() -> dict[int, int]:
        return dict(applied)

    async def read_ends() -> dict[int, int]:
        return dict(ends)

    async def waiter_then_apply() -> bool:
        waiting = asyncio.create_task(wait_caught_up(read_applied, read_ends, changed, timeout=30))
        await asyncio.sleep(0)
        ends[0] = 9  # records arriving after the request came in are not waited for
        await apply_two()
        return await waiting

    assert await waiter_then_apply() is True


async def test_waiting_for_a_copy_that_stays_behind_gives_up_and_says_so() -> None:
    async def read_applied() -> dict[int, int]:
        return {0: 0}

    async def read_ends() -> dict[int, int]:
        return {0: 1}

    async def changed(timeout: float) -> None:
        await asyncio.sleep(timeout)

    assert await wait_caught_up(read_applied, read_ends, changed, timeout=0.05) is False
