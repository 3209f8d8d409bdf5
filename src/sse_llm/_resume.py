"""Detached, resumable streams: the producer runs apart from the response that reads it.

:class:`StreamHub` runs each stream's producer in its own task group, opened by the app (``async
with hub:`` in the lifespan). A producer is an ordinary :class:`~sse_llm.EventStream` driven as
an ASGI app whose ``send`` writes to a :class:`StreamStore` instead of a socket, so
normalisation, errors-as-``error``-events, flush hooks and ``on_complete`` behave exactly as in
a normal response. Every stored event gets an ``id:`` (``<stream id>-<seq>``); a response
(:class:`ResumeStream`) replays the stored events after a client's ``Last-Event-ID`` (WHATWG HTML
§9.2.4) and then tails the store. A client that goes away stops only its response; the
producer keeps going until the source ends, :meth:`StreamHub.cancel`, ``abandon_after`` or the
hub's exit. A producer refreshes its liveness in the store while it runs, so that the readers
of one whose process died are ended (an ``error`` event with code ``gone``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup

from ._formats import EventsFormat, WireFormat
from ._pump import (
    CompletionHook,
    EventStream,
    ShutdownSignal,
    Source,
    _check_timing,
    _lower_headers,
    _response_headers,
)
from ._result import EndReason, StreamResult
from ._sources import aclose_source

__all__ = ["MemoryStore", "ResumeStream", "StoredEvents", "StreamHub", "StreamStore"]

logger = logging.getLogger("sse_llm")

#: Only this media type has ids and ``Last-Event-ID`` (WHATWG HTML §9.2).
SSE_MEDIA_TYPE = "text/event-stream"
#: A reader refreshes its presence, and a producer its liveness, in the store this often
#: (seconds) ...
PRESENCE_REFRESH = 1.0
#: ... and each lasts this long (seconds) unless refreshed, so that a reader or a producer in a
#: process that died stops counting.
PRESENCE_TTL = 3.0
#: The shortest ``keep`` (seconds): a finished stream must outlive the wait of a reader that is
#: attached (``MAX_WAIT``, a store's block) so that it reads the end instead of an expiry.
MIN_KEEP = 1.0
#: At most this many stored events are fetched by one read.
READ_LIMIT = 1000
#: A waiting response reads the store at least this often (seconds), to notice an expiry.
MAX_WAIT = 5.0

# secrets.token_urlsafe(18): 24 characters of [A-Za-z0-9_-], 144 random bits. The fixed length
# makes "<stream id>-<seq>" unambiguous although the stream id may itself contain "-".
_STREAM_ID_BYTES = 18
# A seq has at most 15 digits: far more events than a stream can have, and below every end
# marker and 64-bit id a store may use.
_LAST_EVENT_ID = re.compile(r"([A-Za-z0-9_-]{24})(?:-(0|[1-9][0-9]{0,14}))?")
#: Sent, with nothing else, when the store cannot be read before a response has started: an
#: ``EventSource`` treats a ``200`` body that ends as a lost connection and reconnects after
#: this many ms (WHATWG HTML §9.2.3), whereas any other status makes it give up for good.
_RETRY_LATER = b"retry: 1000\n\n"
#: The ``error`` event for a stream whose producer's process died (code ``gone``).
_GONE_MESSAGE = "The answer was interrupted because the server stopped. Please try again."


_ASGIReceive = Callable[[], Awaitable[Mapping[str, Any]]]
_ASGISend = Callable[[Mapping[str, Any]], Awaitable[None]]


def _parse_last_event_id(value: str | None) -> tuple[str, int] | None:
    """Split a :class:`StreamHub` event id into ``(stream id, seq)``.

    Accepts ``"<stream id>-<seq>"`` (an event's ``id``, as a browser sends it back in
    ``Last-Event-ID``) and a bare ``"<stream id>"`` (as :meth:`StreamHub.start` returns it,
    meaning "from the first event": seq 0).

    Returns:
        ``(stream_id, seq)``, or ``None`` when ``value`` is not of that shape (an id from
        another stream source, an empty header, garbage).
    """
    if not value:
        return None
    match = _LAST_EVENT_ID.fullmatch(value)
    if match is None:
        return None
    return match[1], int(match[2] or 0)


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
    """

    async def create(self, stream_id: str, meta: bytes) -> None:
        """Register a new, empty, live stream with the hub's opaque ``meta`` bytes."""
        ...

    async def append(self, stream_id: str, records: Sequence[tuple[int, bytes]]) -> None:
        """Store ``(seq, bytes)`` records of a live stream, in order, and wake its readers."""
        ...

    async def finish(self, stream_id: str, keep: float) -> None:
        """Mark the stream finished; forget it after ``keep`` seconds."""
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
        """Record that the stream's producer runs for at least ``ttl`` more seconds; once
        that runs out on an unfinished stream, :meth:`read` reports ``producer_lost`` and
        :meth:`request_cancel` returns ``False``."""
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
        max_events: how many of a stream's most recent events are kept. A resume from before
            them gets ``204 No Content``.

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
            raise LookupError(f"no live stream {stream_id!r}")
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
        if stream is not None:
            stream.producer_until = max(stream.producer_until, time.monotonic() + ttl)

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
            await anyio.sleep_forever()
        finally:
            self._watchers.remove(on_cancel)


# -- ids on the wire --------------------------------------------------------------------------


def _has_field(lines: bytes) -> bool:
    """Whether a block of lines holds a field, not only comments (lines starting ``:``)."""
    if lines and not lines.startswith(b":"):
        return True  # the usual event: its first line is a field
    return any(line and not line.startswith(b":") for line in lines.split(b"\n"))


def _split_events(chunk: bytes) -> list[tuple[bytes, bool]]:
    """Split a body chunk into ``(lines, is_event)`` parts, in order.

    An event is the lines before a blank line (the encoder writes LF only), returned with their
    final LF but without the blank line, so an ``id:`` line can go in before it. Lines after the
    last blank line (a comment, a lone ``retry:``) dispatch nothing and are kept as they are.
    """
    pieces = chunk.split(b"\n\n")
    rest = pieces.pop()
    parts = []
    for piece in pieces:
        if _has_field(piece):
            parts.append((piece + b"\n", True))
        elif piece:
            parts.append((piece + b"\n", False))  # comments only: nothing to dispatch
    if rest:
        parts.append((rest, False))
    return parts


# -- the hub ----------------------------------------------------------------------------------


class _Producer:
    """One detached stream's producer state."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        # The stream id is URL-safe (secrets.token_urlsafe), so a client keeps it as an id
        # (no CR, LF or NUL, WHATWG HTML §9.2.6).
        self.id_prefix = f"id: {stream_id}-".encode("ascii")
        self.seq = 0  # the last stored seq
        self.stop = anyio.Event()  # delivered to the EventStream as http.disconnect
        self.stop_reason: EndReason | None = None
        self.shutdown = anyio.Event()  # the hub's exit: EventStream's shutdown signal
        self.done = anyio.Event()
        self.store_error: Exception | None = None
        # The pump and its watcher (a flush, a tail) may both send: numbering and storing a
        # chunk is one step, so the store gets seqs in order and without gaps.
        self.write_lock = anyio.Lock()

    def number(self, chunk: bytes) -> list[tuple[int, bytes]]:
        """Give each part of ``chunk`` the next seq, and each event its ``id:`` line."""
        records = []
        for lines, is_event in _split_events(chunk):
            self.seq += 1
            if is_event:
                lines += self.id_prefix + str(self.seq).encode("ascii") + b"\n\n"
            records.append((self.seq, lines))
        return records


def _encode_meta(format: WireFormat) -> bytes:
    headers = [
        [name.decode("latin-1"), value.decode("latin-1")]
        for name, value in _response_headers(format, None)
    ]
    # The format's own rendering of the "gone" error, for readers of a stream whose producer
    # died; empty for formats that show errors only in their last event (the HTML formats).
    gone = format.renderer().error(_GONE_MESSAGE, "gone")
    fields = {
        "headers": headers,
        "heartbeat": format.heartbeat.decode("utf-8"),
        "gone": gone.decode("utf-8"),
    }
    return json.dumps(fields).encode()


@dataclass(frozen=True, slots=True)
class _Meta:
    headers: list[tuple[bytes, bytes]]
    heartbeat: bytes
    gone: bytes


def _decode_meta(meta: bytes) -> _Meta:
    fields = json.loads(meta)
    headers = [
        (name.encode("latin-1"), value.encode("latin-1")) for name, value in fields["headers"]
    ]
    return _Meta(headers, fields["heartbeat"].encode("utf-8"), fields["gone"].encode("utf-8"))


class StreamHub:
    """Runs detached streams: producers that outlive their client, readable from a store.

    Use one hub per app, entered in the app's lifespan (``async with hub:``): it owns the task
    group the producers run in. Leaving it shuts every producer down as
    :class:`~sse_llm.EventStream`'s ``shutdown`` does (an ``error`` event with code
    ``shutdown`` for readers, the source closed, reason ``shutdown``) and waits for them.

    A server waits for open responses before it runs the lifespan's shutdown, and a response
    of a live stream stays open until its producer ends: pass ``shutdown`` (the event the app
    sets when shutdown begins, as for ``EventStream``) so that producers are shut down then,
    and responses reading a stream that another process produces end at once (an
    ``EventSource`` reconnects with its ``Last-Event-ID``, to a process still serving).

    A stream id is a bearer capability: whoever has it (or any of its event ids) can read the
    answer and cancel it, through :meth:`response` and :meth:`cancel`. Check in your view that
    the user may do so (e.g. keep the stream id with the conversation it belongs to), and do
    not log it.

    A producer whose process dies (a crash, a kill) stops refreshing its liveness in the store:
    within :data:`PRESENCE_TTL` s plus one read wait, its readers get the format's ``error``
    event with code ``gone`` (the HTML formats: the body just ends) and the body ends; a
    reconnect gets ``204 No Content`` and :meth:`cancel` returns ``False``.

    Args:
        store: where events are kept: :class:`MemoryStore` (this process) or ``RedisStore``
            (any process that reaches the same Redis).
        keep: seconds a finished stream's events stay readable; at least :data:`MIN_KEEP`.
        abandon_after: seconds without any attached reader after which a producer is stopped
            (reason ``abandoned``) so that nobody pays for tokens no one reads; ``None`` (the
            default) generates to the end. Presence is refreshed every
            :data:`PRESENCE_REFRESH` s and lasts :data:`PRESENCE_TTL` s, so a stream is
            stopped between ``abandon_after`` and ``abandon_after + PRESENCE_TTL + 1`` s after
            its last reader left.
        close_timeout: seconds allowed for closing a source and for one store write.
        shutdown: an event (``anyio.Event``, ``asyncio.Event`` ...) the app sets when shutdown
            begins; the hub then shuts down as on leaving ``async with``.

    Raises:
        ValueError: ``keep`` is below :data:`MIN_KEEP`, or ``abandon_after`` /
            ``close_timeout`` is not positive.
    """

    def __init__(
        self,
        store: StreamStore,
        *,
        keep: float = 300.0,
        abandon_after: float | None = None,
        close_timeout: float = 5.0,
        shutdown: ShutdownSignal | None = None,
    ) -> None:
        if keep < MIN_KEEP:
            raise ValueError(f"keep must be at least {MIN_KEEP} seconds: {keep}")
        if abandon_after is not None and abandon_after <= 0:
            raise ValueError(f"abandon_after must be positive seconds or None: {abandon_after}")
        if close_timeout <= 0:
            raise ValueError(f"close_timeout must be positive seconds: {close_timeout}")
        self.store = store
        self.keep = keep
        self.abandon_after = abandon_after
        self.close_timeout = close_timeout
        self.shutdown = shutdown
        self._producers: dict[str, _Producer] = {}
        self._task_group: TaskGroup | None = None
        # The cancel listener and the shutdown waiter. Made in __aenter__: a hub is often made
        # at import time, outside any event loop.
        self._services: anyio.CancelScope | None = None
        self._closing: anyio.Event | None = None  # set once shutdown has begun

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> StreamHub:
        if self._task_group is not None:
            raise RuntimeError("this StreamHub is already running")
        self._closing = anyio.Event()
        self._services = anyio.CancelScope()
        task_group = anyio.create_task_group()
        await task_group.__aenter__()
        try:
            await task_group.start(self._run_services)
        except BaseException as exc:
            task_group.cancel_scope.cancel()
            await task_group.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._task_group = task_group
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        task_group = self._task_group
        if task_group is None:
            return None
        self._begin_shutdown()
        if self._services is not None:
            self._services.cancel()
        try:
            return await task_group.__aexit__(*exc_info)
        finally:
            self._task_group = None

    def _begin_shutdown(self) -> None:
        if self._closing is not None:
            self._closing.set()
        for producer in list(self._producers.values()):
            producer.shutdown.set()

    async def _run_services(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        assert self._services is not None
        with self._services:
            async with anyio.create_task_group() as services:
                await services.start(self._listen_for_cancels)
                if self.shutdown is not None:
                    services.start_soon(self._wait_shutdown, self.shutdown)
                task_status.started()

    async def _wait_shutdown(self, shutdown: ShutdownSignal) -> None:
        await shutdown.wait()
        self._begin_shutdown()

    async def _listen_for_cancels(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        started = False

        def ready() -> None:
            nonlocal started
            if not started:
                started = True
                task_status.started()

        while True:
            try:
                await self.store.watch_cancels(self._cancel_requested, ready)
            except Exception:
                if not started:
                    raise  # the store is unreachable at startup: fail loudly
                logger.exception("watching for stream cancel requests failed; retrying")
            await anyio.sleep(1.0)

    def _cancel_requested(self, stream_id: str) -> None:
        producer = self._producers.get(stream_id)
        if producer is not None:
            self._stop(producer, "cancelled")

    @staticmethod
    def _stop(producer: _Producer, reason: EndReason) -> None:
        if producer.stop_reason is None:
            producer.stop_reason = reason
        producer.stop.set()

    # -- the public surface -----------------------------------------------------------------

    async def start(
        self,
        source: Source,
        *,
        format: WireFormat | None = None,
        on_complete: CompletionHook | None = None,
    ) -> str:
        """Start producing ``source`` in the background; return the new stream's id.

        Args:
            source: anything :class:`~sse_llm.EventStream` streams (text, LLM events,
                provider chunks, ready-made events). An ``id`` a ready-made event carries is
                overridden by the hub's (the last ``id:`` line of an event wins, WHATWG HTML
                §9.2.6).
            format: a ``text/event-stream`` wire format (default
                :class:`~sse_llm.EventsFormat`).
            on_complete: called once with the :class:`~sse_llm.StreamResult` when the
                producer ends: reason ``completed``, ``error``, ``shutdown`` (the hub's exit),
                ``cancelled`` (:meth:`cancel`) or ``abandoned`` (``abandon_after``); also
                ``error`` when the store failed (``result.error`` is the store's exception).

        Returns:
            the stream id: 24 URL-safe characters (144 random bits, so unguessable), valid in
            a URL path, to pass to :meth:`response` or :meth:`cancel`.

        Raises:
            ValueError: the format is not ``text/event-stream`` (other formats have no event
                ids, so nothing to resume from). The source is then left untouched.
            RuntimeError: the hub is not running (``async with hub:``) or is shutting down
                (also when that began while the stream was being created: the stream is then
                finished in the store and the source closed).
            Exception: whatever the store raised: while creating the stream (the source is
                then left untouched, for the caller to close), or just after (the stream is
                then finished and the source closed).
        """
        wire = format if format is not None else EventsFormat()
        if wire.media_type != SSE_MEDIA_TYPE:
            raise ValueError(
                f"only {SSE_MEDIA_TYPE} streams can be resumed (WHATWG HTML §9.2 event ids), "
                f"not {wire.media_type}"
            )
        task_group = self._task_group
        if task_group is None or self._closing is None or self._closing.is_set():
            raise RuntimeError("the StreamHub is not running: enter it with `async with hub:`")
        stream_id = secrets.token_urlsafe(_STREAM_ID_BYTES)
        await self.store.create(stream_id, _encode_meta(wire))
        try:
            # Before the id is handed out: no reader may find the producer not yet alive.
            await self.store.touch_producer(stream_id, PRESENCE_TTL)
            closing = self._closing
            if closing is None or closing.is_set() or self._task_group is not task_group:
                # Shutdown began while the store was creating the stream.
                raise RuntimeError("the StreamHub is shutting down: no new streams")
            producer = _Producer(stream_id)

            async def complete(result: StreamResult) -> None:
                await self._complete(producer, on_complete, result)

            stream = EventStream(
                source,
                format=wire,
                heartbeat=None,  # readers send their own heartbeats
                send_timeout=None,  # the store is the only client
                on_complete=complete,
                shutdown=producer.shutdown,
                close_timeout=self.close_timeout,
            )
        except BaseException:
            await self._abort(stream_id, source)
            raise
        self._producers[stream_id] = producer
        task_group.start_soon(self._produce, producer, stream, name=f"sse-llm stream {stream_id}")
        return stream_id

    async def _abort(self, stream_id: str, source: Source) -> None:
        """Undo a :meth:`start` that failed after the store created the stream: finish it
        there and close the source, which never started (as ``EventStream`` closes one)."""
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(self.close_timeout):
                try:
                    await self.store.finish(stream_id, self.keep)
                except Exception:
                    logger.exception("finishing a detached stream that never started failed")
            if not isinstance(source, str | bytes):
                with anyio.move_on_after(self.close_timeout):
                    try:
                        await aclose_source(source, source)
                    except Exception:
                        logger.exception("closing the stream source failed")

    def recognizes(self, last_event_id: str | None) -> bool:
        """Whether ``last_event_id`` (a ``Last-Event-ID`` header) has the shape of this
        hub's ids (``<24 URL-safe characters>`` or ``<that>-<seq>``).

        Only the shape: not whether the stream exists, nor whether the user may read it (see
        the class docstring: a stream id is a bearer capability). A recognized id whose stream
        expired gets ``204 No Content`` from :meth:`response`, which tells an ``EventSource``
        to stop reconnecting (WHATWG HTML §9.2.3) rather than ask the model again.
        """
        return _parse_last_event_id(last_event_id) is not None

    def response(
        self,
        last_event_id: str,
        *,
        heartbeat: float | None = 15.0,
        send_timeout: float | None = 30.0,
        headers: Mapping[str, str] | None = None,
    ) -> ResumeStream:
        """An ASGI app that sends a stream's events after ``last_event_id``, then the live rest.

        Args:
            last_event_id: a stream id (from the first event) or a ``Last-Event-ID``.
            heartbeat: seconds without output before the format's heartbeat comment is sent;
                ``None`` disables.
            send_timeout: seconds one send may wait on a client that is not reading before the
                response is ended (the producer is not affected); ``None`` disables.
            headers: extra response headers.

        See :class:`ResumeStream` for the statuses. For Starlette/FastAPI,
        ``sse_llm.starlette.ResumeResponse`` wraps this in a ``Response``.
        """
        return ResumeStream(
            self, last_event_id, heartbeat=heartbeat, send_timeout=send_timeout, headers=headers
        )

    async def cancel(self, stream_id: str) -> bool:
        """Stop a stream (a Stop button): its source is closed, ``on_complete`` gets reason
        ``cancelled``, and readers see the end of the body with no ``done`` event (as after a
        disconnect; a reconnecting ``EventSource`` then gets ``204``).

        Args:
            stream_id: a stream id or one of its event ids.

        Returns:
            whether the stream was live. For a stream this hub produces, this returns once the
            producer has ended (within ``close_timeout`` + 1 s); for one produced elsewhere,
            once the request is passed on through the store (``RedisStore``: pub/sub).
        """
        position = _parse_last_event_id(stream_id)
        if position is None:
            return False
        producer = self._producers.get(position[0])
        if producer is None:
            return await self.store.request_cancel(position[0])
        self._stop(producer, "cancelled")
        with anyio.move_on_after(self.close_timeout + 1.0):
            await producer.done.wait()
        return True

    # -- the producer -----------------------------------------------------------------------

    async def _produce(self, producer: _Producer, stream: EventStream) -> None:
        requested = False

        async def receive() -> Mapping[str, Any]:
            nonlocal requested
            if not requested:
                requested = True
                return {"type": "http.request", "body": b"", "more_body": False}
            await producer.stop.wait()
            return {"type": "http.disconnect"}

        async def send(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                await self._store(producer, message["body"])

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "path": "/",
            "headers": [],
        }
        try:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(self._keep_alive, producer)
                if self.abandon_after is not None:
                    task_group.start_soon(self._watch_readers, producer, self.abandon_after)
                await stream(scope, receive, send)
                task_group.cancel_scope.cancel()
        except Exception:
            logger.exception("a detached stream's producer failed")
        finally:
            with anyio.CancelScope(shield=True):
                with anyio.move_on_after(self.close_timeout):
                    try:
                        await self.store.finish(producer.stream_id, self.keep)
                    except Exception:
                        logger.exception("marking a detached stream finished failed")
                self._producers.pop(producer.stream_id, None)
                producer.done.set()

    async def _store(self, producer: _Producer, chunk: bytes) -> None:
        async with producer.write_lock:
            await self._store_locked(producer, chunk)

    async def _store_locked(self, producer: _Producer, chunk: bytes) -> None:
        if producer.store_error is not None:
            raise OSError("the stream store failed")
        try:
            # Shielded: a cancel must not leave a seq half written (readers would see a gap).
            with anyio.CancelScope(shield=True):
                records = producer.number(chunk)
                with anyio.move_on_after(self.close_timeout) as timer:
                    await self.store.append(producer.stream_id, records)
                if timer.cancelled_caught:
                    raise TimeoutError(f"the stream store took over {self.close_timeout} s")
        except Exception as exc:
            producer.store_error = exc
            logger.error("the stream store failed; ending the stream", exc_info=exc)
            # To the EventStream a store that fails is a client that went away: it stops and
            # closes the source; _complete then reports the error.
            raise OSError("the stream store failed") from exc

    async def _complete(
        self, producer: _Producer, hook: CompletionHook | None, result: StreamResult
    ) -> None:
        if producer.store_error is not None:
            result.reason = "error"
            if result.error is None:
                result.error = producer.store_error
        elif producer.stop_reason is not None and result.reason == "disconnected":
            result.reason = producer.stop_reason  # the only "client" that leaves is the hub
        if hook is not None:
            outcome = hook(result)
            if outcome is not None:
                await outcome

    async def _keep_alive(self, producer: _Producer) -> None:
        while True:
            await anyio.sleep(PRESENCE_REFRESH)
            try:
                await self.store.touch_producer(producer.stream_id, PRESENCE_TTL)
            except Exception:
                logger.exception("refreshing a detached stream's liveness failed")

    async def _watch_readers(self, producer: _Producer, abandon_after: float) -> None:
        last_seen = time.monotonic()
        interval = min(abandon_after / 4, PRESENCE_REFRESH)
        while True:
            await anyio.sleep(interval)
            try:
                seen = await self.store.has_reader(producer.stream_id)
            except Exception:
                logger.exception("checking a detached stream's readers failed")
                seen = True  # a store hiccup is no reason to throw the answer away
            now = time.monotonic()
            if seen:
                last_seen = now
            elif now - last_seen >= abandon_after:
                self._stop(producer, "abandoned")
                return


# -- the response -----------------------------------------------------------------------------


class ResumeStream:
    """An ASGI app sending a detached stream from a position: made by :meth:`StreamHub.response`.

    - ``200``: the headers an :class:`~sse_llm.EventStream` of the stream's format sends
      (``content-type: text/event-stream; charset=utf-8``, ``cache-control: no-cache``,
      ``x-accel-buffering: no``, the format's own), then every stored event after the
      position, then live events as they are stored, with the format's heartbeat after
      ``heartbeat`` seconds of silence. The body ends once the producer has finished and
      everything was sent.
      If the producer's process died, the format's ``error`` event with code ``gone`` (none
      for the HTML formats) is sent after the stored events and the body ends.
    - ``204 No Content`` (which makes an ``EventSource`` stop reconnecting, WHATWG HTML
      §9.2.3): the id is not a stream id, the stream is unknown or expired, it has finished
      with nothing after the position (also a position beyond its last event), the events
      after the position were evicted, or its producer died with nothing after the position.
    - ``200`` with only ``retry: 1000`` when the store failed before anything was sent (logged):
      an ``EventSource`` reconnects after 1 s, whereas an error status would make it give up
      for good (WHATWG HTML §9.2.3).

    An ``http.disconnect`` ends only this response: the producer keeps going. A live stream
    read from a position beyond its last event waits for events above that position.

    Raises:
        ValueError: a non-positive ``heartbeat`` or ``send_timeout``, or a ``Connection``
            header.
    """

    def __init__(
        self,
        hub: StreamHub,
        last_event_id: str,
        *,
        heartbeat: float | None = 15.0,
        send_timeout: float | None = 30.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        _check_timing(heartbeat, send_timeout)
        extra = _lower_headers(headers or {})
        self.hub = hub
        self.last_event_id = last_event_id
        self.heartbeat = heartbeat
        self.send_timeout = send_timeout
        #: Extra headers, sent after (and instead of same-named) format headers; a list that
        #: may be edited in place until the response starts.
        self.headers: list[tuple[bytes, bytes]] = [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()
        ]

    async def __call__(
        self, scope: Mapping[str, Any], receive: _ASGIReceive, send: _ASGISend
    ) -> None:
        store = self.hub.store
        position = _parse_last_event_id(self.last_event_id)
        meta = found = None
        if position is not None:
            try:
                meta = await store.meta(position[0])
                if meta is not None:
                    found = await store.read(position[0], position[1], 0)
            except Exception:
                logger.exception("reading a detached stream from the store failed")
                await self._end_at_once(send, 200, _RETRY_LATER)
                return
        if (
            position is None
            or meta is None
            or found is None
            or found.missing
            or (not found.records and (found.finished or found.producer_lost))
        ):
            await self._end_at_once(send, 204, b"")
            return
        stream_id = position[0]
        stream_meta = _decode_meta(meta)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": self._headers(stream_meta),
                }
            )
        except OSError:
            return
        reader = _Reader(self, send, stream_id, stream_meta)
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(reader.watch, receive, task_group.cancel_scope)
            task_group.start_soon(_keep_presence, store, stream_id)
            task_group.start_soon(reader.leave_at_shutdown, task_group.cancel_scope)
            await reader.pump(found, position[1])
            task_group.cancel_scope.cancel()
        if reader.complete:
            with anyio.move_on_after(self.send_timeout):
                with contextlib.suppress(OSError):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _headers(self, meta: _Meta | None) -> list[tuple[bytes, bytes]]:
        """The stream format's headers (an ``EventsFormat``'s without ``meta``), then ours."""
        format_headers = (
            meta.headers if meta is not None else _response_headers(EventsFormat(), None)
        )
        extra_names = {name.lower() for name, _ in self.headers}
        return [h for h in format_headers if h[0] not in extra_names] + self.headers

    async def _end_at_once(self, send: _ASGISend, status: int, body: bytes) -> None:
        headers = self._headers(None) if status == 200 else self.headers
        with contextlib.suppress(OSError):  # ASGI 2.4: the client is already gone
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body, "more_body": False})


async def _keep_presence(store: StreamStore, stream_id: str) -> None:
    while True:
        try:
            await store.touch_reader(stream_id, PRESENCE_TTL)
        except Exception:
            logger.exception("recording a stream reader's presence failed")
        await anyio.sleep(PRESENCE_REFRESH)


class _Reader:
    """One resumed response's send loop and disconnect watcher."""

    def __init__(
        self, response: ResumeStream, send: _ASGISend, stream_id: str, meta: _Meta
    ) -> None:
        self.response = response
        self.send = send
        self.stream_id = stream_id
        self.meta = meta
        self.complete = False  # the body may be closed (not after a disconnect or timeout)

    async def leave_at_shutdown(self, scope: anyio.CancelScope) -> None:
        hub = self.response.hub
        if hub._closing is None:
            return  # the hub is not running here: this process produces nothing
        await hub._closing.wait()
        if self.stream_id in hub._producers:
            return  # ends once its producer has stored the shutdown error event
        # Produced elsewhere and still going: end the body so the server can stop; the client
        # reconnects with its Last-Event-ID, to a process that is still serving.
        self.complete = True
        scope.cancel()

    async def watch(self, receive: _ASGIReceive, scope: anyio.CancelScope) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                scope.cancel()
                return

    async def _send(self, body: bytes) -> bool:
        """Send one chunk; False when the client is gone or did not read in time."""
        message = {"type": "http.response.body", "body": body, "more_body": True}
        try:
            with anyio.move_on_after(self.response.send_timeout):
                await self.send(message)
                return True
        except OSError:
            pass
        return False

    async def pump(self, found: StoredEvents | None, after: int) -> None:
        store = self.response.hub.store
        heartbeat = self.response.heartbeat
        last_output = time.monotonic()
        while True:
            if found is None or found.missing:
                self.complete = True  # expired or evicted: end the body; a reconnect gets 204
                return
            if found.records:
                body = b"".join(data for _, data in found.records)
                after = found.records[-1][0]
                if not await self._send(body):
                    return
                last_output = time.monotonic()
            if found.finished:
                self.complete = True
                return
            if found.producer_lost:
                # Its process died: nothing more will come. A reconnect gets 204.
                logger.warning("a detached stream's producer is gone; ending its reader")
                if self.meta.gone:
                    await self._send(self.meta.gone)
                self.complete = True
                return
            wait = MAX_WAIT
            if heartbeat is not None:
                due = last_output + heartbeat - time.monotonic()
                if due <= 0:
                    if not await self._send(self.meta.heartbeat):
                        return
                    last_output = time.monotonic()
                    due = heartbeat
                wait = min(wait, due)
            try:
                found = await store.read(self.stream_id, after, wait)
            except Exception:
                # End the body rather than break the connection: the client reconnects with
                # its Last-Event-ID and is served once the store answers again.
                logger.exception("reading a detached stream from the store failed")
                self.complete = True
                return
