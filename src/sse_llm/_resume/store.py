"""What a :class:`~sse_llm.resume.StreamHub` keeps its streams in: the store protocol."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["MIN_KEEP", "READ_LIMIT", "StoredEvents", "StreamStore"]

#: The shortest ``keep`` (seconds): a finished stream must outlive the wait of a reader that is
#: attached (a store's block) so that it reads the end instead of an expiry.
MIN_KEEP = 1.0
#: At most this many stored events are fetched by one read.
READ_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class StoredEvents:
    """What one :meth:`StreamStore.read` found.

    Attributes:
        records: ``(seq, bytes)`` pairs in ascending ``seq``, every ``seq`` above the one
            asked for; the bytes are ready to send (each event with its ``id:`` line).
        finished: the records reach the end of a stream whose producer has finished.
        missing: events after the one asked for were already evicted (the stream outgrew the
            store's ``max_events``), so the stream cannot continue exactly from there.
        producer_lost: no records, the stream is not finished, and its producer's liveness
            (:meth:`StreamStore.touch_producer`) has run out: its process died, nothing more
            will come.
    """

    records: Sequence[tuple[int, bytes]] = ()
    finished: bool = False
    missing: bool = False
    producer_lost: bool = False


class StreamStore(Protocol):
    """Where a :class:`StreamHub` keeps stream events so that any response can read them.

    ``seq`` numbers are given by the hub: 1, 2, 3 ... per stream, without gaps, and one
    stream's writes never overlap. A store need only keep the most recent events of a stream
    (a bound), and forgets a finished stream ``keep`` seconds (at least :data:`MIN_KEEP`) after
    :meth:`finish`. A ``read`` with ``after`` at or beyond the last record of a finished stream
    finds nothing, finished; of a live stream, it waits for records above ``after``.

    A store that can lose a live stream behind the producer's back (a Redis restart without
    persistence, hidden by the client's own retries) raises ``LookupError`` from
    :meth:`append`, :meth:`finish` and :meth:`touch_producer` when the stream is not there,
    instead of writing a stream without its ``meta`` and first events: the hub then stores it
    again whole (:meth:`restore`). A store that can lose data may also have an ``async def
    restarted_within(self, seconds: float) -> bool`` (as ``RedisStore`` has; optional, so
    that stores written for sse-llm 0.1.0 keep working): while it returns ``True``, a reader
    asked for a stream the store does not know tells the client to come back (the stream may
    be one the store just lost, that its producer is storing again) instead of to give up.
    """

    async def create(self, stream_id: str, meta: bytes) -> None:
        """Register a new, empty, live stream with the hub's opaque ``meta`` bytes."""
        ...

    async def append(self, stream_id: str, records: Sequence[tuple[int, bytes]]) -> None:
        """Store ``(seq, bytes)`` records of a live stream, in order, and wake its readers.

        Raises:
            LookupError: the stream is not in the store (nothing is written).
        """
        ...

    async def restore(
        self, stream_id: str, meta: bytes, records: Sequence[tuple[int, bytes]]
    ) -> None:
        """After an outage: make sure the live stream exists with ``meta`` (create it again
        if the store lost it, a Redis restart without persistence) and holds ``records``
        (every record of the stream so far, in order): store those above its last stored
        seq, and any the outage lost (a Redis restart that kept only part of its append-only
        file)."""
        ...

    async def finish(self, stream_id: str, keep: float) -> None:
        """Mark the stream finished; forget it after ``keep`` seconds.

        Raises:
            LookupError: the stream is not in the store (nothing is written).
        """
        ...

    async def meta(self, stream_id: str) -> bytes | None:
        """The ``meta`` given to :meth:`create`; ``None`` for an unknown or expired stream."""
        ...

    async def read(self, stream_id: str, after: int, wait: float) -> StoredEvents | None:
        """Records with ``seq > after``, waiting up to ``wait`` seconds for one if there is
        none yet; ``None`` for an unknown or expired stream."""
        ...

    async def touch_reader(self, stream_id: str, ttl: float) -> None:
        """Record that a reader is attached for at least ``ttl`` more seconds."""
        ...

    async def touch_producer(self, stream_id: str, ttl: float) -> None:
        """Record that the stream's producer runs for ``ttl`` more seconds, replacing the
        previous record (a producer that gives its stream up ends its liveness with a tiny
        ``ttl``); once that runs out on an unfinished stream, :meth:`read` reports
        ``producer_lost`` and :meth:`request_cancel` returns ``False``.

        Raises:
            LookupError: the stream is not in the store (a store that can lose it, such as
                Redis, records the liveness all the same, so that no reader takes the producer
                for dead while it stores the stream again).
        """
        ...

    async def has_reader(self, stream_id: str) -> bool:
        """Whether a reader's presence (see :meth:`touch_reader`) has not yet run out."""
        ...

    async def request_cancel(self, stream_id: str) -> bool:
        """Ask whichever hub produces the stream to cancel it (see :meth:`watch_cancels`).

        Returns:
            whether the stream is known, not finished, and its producer alive.
        """
        ...

    async def watch_cancels(
        self, on_cancel: Callable[[str], None], ready: Callable[[], None]
    ) -> None:
        """Call ``on_cancel(stream_id)`` for each :meth:`request_cancel`, until cancelled.

        ``ready()`` is called once requests made from then on are sure to be seen.
        """
        ...
