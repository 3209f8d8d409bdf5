"""A :class:`~sse_llm.resume.StreamStore` in this process's memory."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import anyio

from .ids import shown
from .store import READ_LIMIT, StoredEvents

__all__ = ["MemoryStore"]


class _MemoryStream:
    __slots__ = (
        "changed",
        "expires",
        "finished",
        "first_seq",
        "meta",
        "producer_until",
        "reader_until",
        "records",
    )

    def __init__(self, meta: bytes) -> None:
        self.meta = meta
        # Appended at the right, trimmed from the left in batches (see MemoryStore.append), so
        # a read is a list slice: O(events read), whatever the stream's length.
        self.records: list[tuple[int, bytes]] = []
        self.first_seq = 1  # the seq of records[0]
        self.finished = False
        self.expires: float | None = None  # monotonic seconds, once finished
        self.changed = anyio.Event()  # replaced by a fresh one at every change
        self.reader_until = 0.0  # monotonic seconds
        self.producer_until = 0.0  # monotonic seconds

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class MemoryStore:
    """A :class:`StreamStore` in this process's memory: a resume must reach the same process
    (one worker, or sticky sessions).

    Args:
        max_events: how many of a stream's most recent events are kept (default 10,000). A
            resume from before them gets ``204 No Content``. Memory holds up to twice as many
            (the older half is dropped at once, not one event per event), and the producer as
            many again, to refill a store that lost the stream (a ``RedisStore``'s restart).

    Raises:
        ValueError: ``max_events`` is not positive.
    """

    def __init__(self, *, max_events: int = 10_000) -> None:
        if max_events <= 0:
            raise ValueError(f"max_events must be positive: {max_events}")
        self.max_events = max_events
        self._streams: dict[str, _MemoryStream] = {}
        self._watchers: list[Callable[[str], None]] = []
        self._next_prune = 0.0

    def _prune(self) -> None:
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + 1.0  # a scan at most once a second
        expired = [
            stream_id
            for stream_id, stream in self._streams.items()
            if stream.expires is not None and stream.expires <= now
        ]
        for stream_id in expired:
            del self._streams[stream_id]

    def _get(self, stream_id: str) -> _MemoryStream | None:
        self._prune()
        stream = self._streams.get(stream_id)
        if stream is not None and stream.expires is not None and stream.expires <= time.monotonic():
            del self._streams[stream_id]
            return None
        return stream

    def _live(self, stream_id: str) -> _MemoryStream:
        stream = self._get(stream_id)
        if stream is None or stream.finished:
            raise LookupError(f"no live stream {shown(stream_id)}")
        return stream

    async def create(self, stream_id: str, meta: bytes) -> None:
        self._prune()
        self._streams[stream_id] = _MemoryStream(meta)

    async def append(self, stream_id: str, records: Sequence[tuple[int, bytes]]) -> None:
        stream = self._live(stream_id)
        stream.records.extend(records)
        excess = len(stream.records) - self.max_events
        if excess >= self.max_events:  # trim once the evicted half is as big as the kept one
            del stream.records[:excess]
            stream.first_seq += excess
        stream.notify()

    async def restore(
        self, stream_id: str, meta: bytes, records: Sequence[tuple[int, bytes]]
    ) -> None:
        # Memory is never lost while the process lives: store only what is new.
        stream = self._get(stream_id)
        if stream is None:
            await self.create(stream_id, meta)
            stream = self._live(stream_id)
        last = stream.first_seq + len(stream.records) - 1
        await self.append(stream_id, [r for r in records if r[0] > last])

    async def finish(self, stream_id: str, keep: float) -> None:
        stream = self._live(stream_id)
        stream.finished = True
        stream.expires = time.monotonic() + keep
        stream.notify()

    async def meta(self, stream_id: str) -> bytes | None:
        stream = self._get(stream_id)
        return None if stream is None else stream.meta

    async def read(self, stream_id: str, after: int, wait: float) -> StoredEvents | None:
        stream = self._get(stream_id)
        if stream is None:
            return None
        found = self._slice(stream, after)
        if found.records or found.finished or found.missing or found.producer_lost or wait <= 0:
            return found
        changed = stream.changed
        with anyio.move_on_after(wait):
            await changed.wait()
        stream = self._get(stream_id)
        return None if stream is None else self._slice(stream, after)

    def _slice(self, stream: _MemoryStream, after: int) -> StoredEvents:
        records = stream.records
        # The oldest kept seq: records before it are evicted, even if not trimmed yet.
        kept_from = max(0, len(records) - self.max_events)
        if after + 1 < stream.first_seq + kept_from:
            return StoredEvents((), False, missing=True)
        start = after + 1 - stream.first_seq  # seqs are contiguous: the index follows
        found = records[start : start + READ_LIMIT]
        if found:
            return StoredEvents(found, stream.finished and start + len(found) == len(records))
        lost = not stream.finished and stream.producer_until <= time.monotonic()
        return StoredEvents((), stream.finished, producer_lost=lost)

    async def touch_reader(self, stream_id: str, ttl: float) -> None:
        stream = self._get(stream_id)
        if stream is not None:
            stream.reader_until = max(stream.reader_until, time.monotonic() + ttl)

    async def has_reader(self, stream_id: str) -> bool:
        stream = self._get(stream_id)
        return stream is not None and stream.reader_until > time.monotonic()

    async def touch_producer(self, stream_id: str, ttl: float) -> None:
        stream = self._get(stream_id)
        if stream is None:
            raise LookupError(f"no stream {shown(stream_id)}")
        # Replaced, not extended: a producer that gives its stream up ends it with a tiny ttl.
        stream.producer_until = time.monotonic() + ttl

    async def request_cancel(self, stream_id: str) -> bool:
        stream = self._get(stream_id)
        if stream is None or stream.finished or stream.producer_until <= time.monotonic():
            return False
        for on_cancel in list(self._watchers):
            on_cancel(stream_id)
        return True

    async def watch_cancels(
        self, on_cancel: Callable[[str], None], ready: Callable[[], None]
    ) -> None:
        self._watchers.append(on_cancel)
        try:
            ready()
            while True:
                # A hub runs this for as long as it runs: the expired streams go here too,
                # not only at the next call to the store (after a burst and then quiet, the
                # last `keep` window's events would stay in memory).
                await anyio.sleep(1.0)
                self._prune()
        finally:
            self._watchers.remove(on_cancel)
