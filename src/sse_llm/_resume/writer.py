"""A producer's writes to the store, in order, riding out a store outage.

The producer never waits for the store: its events go into memory and a writer task stores
them. When the store fails (Redis restarting, a network cut) the writer retries with backoff
for up to ``grace`` seconds while the producer keeps generating, holding at most
``grace_bytes`` of unstored events. A store that comes back without the stream (a Redis
restart without persistence, also one too quick for any call to fail: the store then raises
``LookupError``) gets it again whole: the writer keeps every event of the stream until it
finishes. An outage longer than the grace ends the stream in the store (its readers
then end with an ``error`` event, code ``store_unavailable``); the producer still runs to the
end, so its completion hook gets the whole answer (reason ``error``, the store's exception).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence

import anyio

from .response import unavailable_event
from .store import StreamStore

__all__ = ["StoreWriter"]

logger = logging.getLogger("sse_llm")

#: The first wait before a failed store write is tried again (seconds); it doubles up to
#: :data:`MAX_BACKOFF`.
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 1.0


class StoreWriter:
    """Stores one stream's records in order; see the module docs.

    Args:
        store: the store.
        stream_id: the stream.
        meta: the stream's metadata, to create it again in a store that lost it.
        grace: seconds a store may fail before the stream is given up.
        grace_bytes: bytes of events not yet stored that may be held meanwhile.
        timeout: seconds one store call may take.
        liveness_ttl: seconds the producer's liveness lasts when the writer refreshes it
            (after an outage, before storing the stream again).
        keep_records: how many of the latest stored records are kept to refill a store that
            lost the stream (the store's ``max_events``: it keeps no more itself); ``None``
            keeps all.
    """

    def __init__(
        self,
        store: StreamStore,
        stream_id: str,
        meta: bytes,
        *,
        grace: float,
        grace_bytes: int,
        timeout: float,
        liveness_ttl: float,
        keep_records: int | None = None,
    ) -> None:
        self.store = store
        self.stream_id = stream_id
        self.meta = meta
        self.grace = grace
        self.grace_bytes = grace_bytes
        self.timeout = timeout
        self.liveness_ttl = liveness_ttl
        # The records, to refill a store that lost the stream: from the latest keep_records
        # stored ones on (a store keeps no more), then those not stored yet.
        self.history: list[tuple[int, bytes]] = []
        self.keep_records = keep_records
        self.stored = 0  # how many of history are in the store
        self.failed_at: float | None = None  # monotonic seconds of the first failure
        self.backoff = FIRST_BACKOFF  # seconds before the next try, while failing
        self.restore_needed = False  # the store failed since the last write: restore first
        self.error: Exception | None = None  # set once the stream is given up
        self.last_failure: Exception | None = None  # the store's latest failure, if any
        self.wake = anyio.Event()
        self.closing = False
        self.finished = False  # close() is done: nothing more to store, no liveness to keep
        self.running = False
        self.stopped = anyio.Event()

    @property
    def pending_bytes(self) -> int:
        return sum(len(data) for _, data in self.history[self.stored :])

    def put(self, records: Sequence[tuple[int, bytes]]) -> None:
        """Queue records (seqs in order, after every queued one). Never waits."""
        if self.error is not None:
            return  # given up: the producer runs on for its hook only
        self.history.extend(records)
        self.wake.set()

    def store_failed(self) -> None:
        """Another call to the store failed (the producer's liveness): the store may have
        restarted and lost data even if no write failed: it is restored as soon as the store
        answers, not at the next event (a model that thinks for a while sends none)."""
        self.restore_needed = True
        self.wake.set()

    async def run(self) -> None:
        """Store queued records until :meth:`close` (a task of the producer)."""
        self.running = True
        try:
            while True:
                if self.stored == len(self.history) and not self.restore_needed:
                    if self.closing:
                        return
                    await self.wake.wait()
                    self.wake = anyio.Event()
                    continue
                if not await self._write():
                    return  # given up
        finally:
            self.running = False
            self.stopped.set()

    async def close(self, keep: float) -> None:
        """Store what is queued, then mark the stream finished (kept ``keep`` seconds)."""
        self.closing = True
        self.wake.set()
        if self.running:
            await self.stopped.wait()  # one writer at a time: the task stores the rest
        # restore_needed too: a store that restarted since the last write (the liveness
        # refresh failed) may lack the last records, which the end must not be put before.
        while self.error is None and (self.stored < len(self.history) or self.restore_needed):
            if not await self._write():
                break
        if self.error is not None:
            keep = max(keep, 1.0)  # readers of a given-up stream still learn it ended
            await self._store_given_up_event()
        deadline = time.monotonic() + (self.grace if self.error is None else 0.0)
        while True:
            try:
                with anyio.fail_after(self.timeout):
                    if self.restore_needed and self.error is None:
                        await self._restore(len(self.history))
                    await self.store.finish(self.stream_id, keep)
                break
            except Exception as exc:
                # Perhaps lost just now (LookupError): stored again whole before the end.
                self.last_failure = exc
                self.restore_needed = True
                if time.monotonic() >= deadline:
                    logger.error("marking a detached stream finished failed", exc_info=exc)
                    break
                await anyio.sleep(MAX_BACKOFF)
        self.finished = True

    async def _store_given_up_event(self) -> None:
        """Store the ``store_unavailable`` error event right after the last stored record,
        if the store answers again: else the end marker would follow it directly, and
        readers would end with neither the answer's end nor an error (a reconnect: 204).
        Numbered as the next event, so a reconnect from it gets 204, not the error again."""
        unavailable = unavailable_event(self.meta)
        if not unavailable.endswith(b"\n\n"):
            return  # a format that shows errors only in its last event (the HTML ones)
        seq = self.history[self.stored - 1][0] + 1 if self.stored else 1
        record = b"%sid: %s-%d\n\n" % (unavailable[:-1], self.stream_id.encode(), seq)
        try:
            with anyio.fail_after(self.timeout):
                await self.store.append(self.stream_id, [(seq, record)])
        except Exception as exc:  # still out of reach: readers end by the liveness
            logger.warning("storing a given-up stream's error event failed: %r", exc)

    async def _write(self) -> bool:
        """One try at storing what is queued; False once the stream is given up."""
        end = len(self.history)  # records queued during the await wait for the next try
        batch = self.history[self.stored : end]
        try:
            with anyio.fail_after(self.timeout):
                if not self.restore_needed:
                    await self.store.append(self.stream_id, batch)
                else:
                    await self._restore(end)
        except Exception as exc:
            return await self._failed(exc)
        if self.failed_at is not None:
            logger.warning(
                "the stream store is back after %.1f s; %d held events stored",
                time.monotonic() - self.failed_at,
                len(batch),
            )
            self.failed_at = None
        self.stored = end
        keep = self.keep_records
        if keep is not None and end > 2 * keep:  # trimmed in halves: amortised, as the store
            del self.history[: end - keep]
            self.stored = keep
        return True

    async def _restore(self, end: int) -> None:
        """Back after an outage, perhaps without the stream or its last records (a restart
        that lost data): liveness first, so that no reader takes the producer for dead, then
        whatever the store lacks of ``history[:end]``."""
        with contextlib.suppress(LookupError):  # lost: the liveness is recorded all the same
            await self.store.touch_producer(self.stream_id, self.liveness_ttl)
        await self.store.restore(self.stream_id, self.meta, self.history[:end])
        self.restore_needed = False

    async def _failed(self, exc: Exception) -> bool:
        self.last_failure = exc
        self.restore_needed = True
        now = time.monotonic()
        if self.failed_at is None:
            self.failed_at = now
            self.backoff = FIRST_BACKOFF
            logger.warning("the stream store failed; holding events and retrying: %r", exc)
        elapsed = now - self.failed_at
        if elapsed >= self.grace or self.pending_bytes > self.grace_bytes:
            self.error = exc
            logger.error(
                "the stream store failed for %.1f s (%d bytes held); giving the stream up",
                elapsed,
                self.pending_bytes,
                exc_info=exc,
            )
            return False
        await anyio.sleep(min(self.backoff, self.grace - elapsed))
        self.backoff = min(self.backoff * 2, MAX_BACKOFF)
        return True
