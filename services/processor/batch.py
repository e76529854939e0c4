"""One batch of the batched loop (``loop.py``): the rows it changed, the records it must send, the offsets it consumed.

Pure bookkeeping, no I/O. The loop applies a batch's events one by one (in offset order per partition), then
sends everything here, waits until Kafka has acknowledged all of it and only then commits ``positions``: a
committed event always has its row and its outputs in Kafka (the crash-safety rule the faust agent kept with
a flush before each commit).

A route written by several events of one batch is sent to the changelog once, with its last value: the
changelog is compacted and only the last record of a key matters, and the events in between are covered by
replay (their offsets are not committed until the batch's last row is acknowledged).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.messages import CancelTimer, HttpRequest, Reply, ScheduleTimer, encode, history_batch

from .runner import Outcome

__all__ = ["Batch", "Output", "outputs_of"]


@dataclass(frozen=True, slots=True)
class Output:
    """One record an event produced. ``topic`` is the short name ("history"); ``partition`` None: by key."""

    topic: str
    key: bytes
    value: bytes | None
    partition: int | None = None
    #: Somebody waits for it (a webhook's or REST create's reply, the HTTP request a waiting webhook depends
    #: on): sent as soon as it is known rather than with the rest of the batch.
    urgent: bool = False


def outputs_of(outcome: Outcome) -> list[Output]:
    """The records to send for one outcome, in the order the faust agent sent them."""
    out: list[Output] = []
    for command in outcome.commands:
        if isinstance(command, HttpRequest):
            state = outcome.executions.get(command.execution_sid)
            waited = state is not None and bool(state.reply_id)  # a webhook waits for this request's result
            out.append(Output("http-requests", command.execution_sid.encode(), encode(command), None, waited))
        elif isinstance(command, ScheduleTimer):
            out.append(Output("timers", command.timer_id.encode(), encode(command)))
        elif isinstance(command, CancelTimer):
            out.append(Output("timers", command.timer_id.encode(), None))
        elif isinstance(command, Reply):
            partition = command.partition if command.partition >= 0 else None
            out.append(Output("replies", command.reply_id.encode(), encode(command), partition, True))
    # One message per execution and sprint, keyed by execution sid (ordered on one partition).
    for batch in history_batch(outcome.records):
        out.append(Output("history", batch.execution_sid.encode(), encode(batch)))
    return out


@dataclass
class Batch:
    """What one batch changed and consumed, per partition of the events topic."""

    #: partition -> route key -> the row's last value in this batch (None: delete it)
    rows: dict[int, dict[bytes, bytes | None]] = field(default_factory=dict)
    #: partition -> route key -> the ``applied`` offset of the row a delete (None in ``rows``) removes
    deleted: dict[int, dict[bytes, int]] = field(default_factory=dict)
    #: records to send at the end of the batch (urgent ones are sent at once and not kept here)
    outputs: list[Output] = field(default_factory=list)
    #: partition -> the offset to commit (the last consumed offset + 1)
    positions: dict[int, int] = field(default_factory=dict)

    def row(self, partition: int, key: bytes) -> tuple[bool, bytes | None]:
        """(written in this batch?, its value): a row changed by an earlier event of the batch wins over the store."""
        rows = self.rows.get(partition)
        if rows is not None and key in rows:
            return True, rows[key]
        return False, None

    def write(self, partition: int, key: bytes, value: bytes) -> None:
        self.rows.setdefault(partition, {})[key] = value
        self.deleted.get(partition, {}).pop(key, None)

    def delete(self, partition: int, key: bytes, applied: int) -> None:
        """Delete the row of ``key``, whose ``applied`` offset was ``applied`` (sent along with the tombstone)."""
        self.rows.setdefault(partition, {})[key] = None
        self.deleted.setdefault(partition, {})[key] = applied

    def consumed(self, partition: int, offset: int) -> None:
        """The event at ``offset`` is done with (handled, skipped as poison or dropped): commit past it."""
        self.positions[partition] = max(self.positions.get(partition, 0), offset + 1)

    def changelog(self) -> list[tuple[int, bytes, bytes | None, list[tuple[str, bytes]]]]:
        """(partition, key, value, headers) for every row the batch changed, each key once (its last value).

        A tombstone carries the ``applied`` offset of the row it deletes as header ``applied``: recovery lets it
        delete only a row that is not newer (``route_store.supersedes``), so a zombie's late delete cannot remove
        a row the partition's next owner has made active again. faust ignores the header.
        """
        out: list[tuple[int, bytes, bytes | None, list[tuple[str, bytes]]]] = []
        for p, rows in self.rows.items():
            deleted = self.deleted.get(p, {})
            for key, value in rows.items():
                headers = [] if value is not None or key not in deleted else [("applied", b"%d" % deleted[key])]
                out.append((p, key, value, headers))
        return out

    @property
    def empty(self) -> bool:
        return not self.rows and not self.outputs and not self.positions
