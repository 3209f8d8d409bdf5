"""Detached, resumable streams: the producer runs apart from the response that reads it.

:class:`StreamHub` runs each stream's producer in its own task group, opened by the app (``async
with hub:`` in the lifespan). A producer is the pump every binding shares, whose engine numbers
the events (``id: <stream id>-<seq>``) and whose ``send`` writes them to a
:class:`~sse_llm.resume.StreamStore` instead of a socket, so normalisation, errors-as-``error``-
events, flush hooks and ``on_complete`` behave exactly as in a normal response. A response
(:class:`~sse_llm.resume.ResumeStream`) replays the stored events after a client's
``Last-Event-ID`` (WHATWG HTML §9.2.4) and then tails the store. A client that goes away stops
only its response; the producer keeps going until the source ends, :meth:`StreamHub.cancel`,
``abandon_after`` or the hub's exit. A producer refreshes its liveness in the store while it
runs, so that the readers of one whose process died are ended (an ``error`` event with code
``gone``); the liveness outlasts the ``outage_grace`` during which its producer may fail to
reach the store (alone: a network cut, a full connection pool) and still deliver everything.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from collections.abc import Awaitable
from typing import Any, Unpack

import anyio
from anyio.abc import TaskGroup

from .._engine import StreamEngine
from .._formats import Units
from .._options import (
    NOT_FOR_PRODUCERS,
    Config,
    ProducerOptions,
    ResumeOptions,
    check_seconds,
    resolve,
)
from .._pump import Pump
from .._result import EndReason, StreamResult
from .._shutdown import GracefulShutdown, current_shutdown, threadsafe
from .._sources import aclose_source, check_source
from .._types import CompletionHook, ShutdownSignal, Source
from .ids import new_stream_id, parse_last_event_id, shown
from .response import PRESENCE_REFRESH, PRESENCE_TTL, ResumeStream, encode_meta
from .store import MIN_KEEP, StreamStore
from .writer import StoreWriter

__all__ = ["StreamHub"]

logger = logging.getLogger("sse_llm")

#: Only this media type has ids and ``Last-Event-ID`` (WHATWG HTML §9.2).
SSE_MEDIA_TYPE = "text/event-stream"
#: The liveness a producer that gave its stream up leaves (seconds): none, at once, so that
#: its readers end instead of waiting for it through an outage grace.
_LIVENESS_ENDED = 0.001
#: What a producer has no use for: it has no client of its own (readers have their own
#: heartbeat, send timeout and headers), and the hub's shutdown is its shutdown.


class _Producer:
    """One detached stream's producer state."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.stop = anyio.Event()  # the producer's "client" leaving: a cancel, no readers
        self.stop_reason: EndReason | None = None
        self.shutdown = anyio.Event()  # the hub's exit: the pump's shutdown signal
        self.done = anyio.Event()
        self.writer: StoreWriter | None = None


class StreamHub:
    """Runs detached streams: producers that outlive their client, readable from a store.

    Use one hub per app, entered in the app's lifespan (``async with hub:``): it owns the task
    group the producers run in. Leaving it shuts every producer down as
    :class:`~sse_llm.EventStream`'s ``shutdown`` does (an ``error`` event with code
    ``shutdown`` for readers, the source closed, reason ``shutdown``) and waits for them. An
    exception raised inside the ``async with`` block comes out of it in an
    ``ExceptionGroup``, as from any task group (``except*`` catches it); the hub's methods
    called from a request raise as documented.

    A server waits for open responses before it runs the lifespan's shutdown, and a response
    of a live stream stays open until its producer ends: pass ``shutdown`` (the event the app
    sets when shutdown begins, as for ``EventStream``) so that producers are shut down then,
    and responses reading a stream that another process produces end at once (an
    ``EventSource`` reconnects with its ``Last-Event-ID``, to a process still serving).

    A stream id is a bearer capability: whoever has it (or any of its event ids) can read the
    answer and cancel it, through :meth:`response` and :meth:`cancel`. Check in your view that
    the user may do so (e.g. keep the stream id with the conversation it belongs to), and do
    not log it.

    A producer whose process dies (a crash, a kill) stops refreshing its liveness in the store,
    which lasts ``outage_grace`` + :data:`PRESENCE_TTL` s (a producer that cannot reach the
    store meanwhile may still store everything): within that plus one read wait, its readers
    get the format's ``error`` event with code ``gone`` (the HTML formats: the body just ends)
    and the body ends; a reconnect gets ``204 No Content`` and :meth:`cancel` returns
    ``False``.

    Args:
        store: where events are kept: :class:`MemoryStore` (this process) or ``RedisStore``
            (any process that reaches the same Redis).
        keep: seconds a finished stream's events stay readable (default 300); at least
            :data:`MIN_KEEP`.
        abandon_after: seconds without any attached reader after which a producer is stopped
            (reason ``abandoned``) so that nobody pays for tokens no one reads; ``None`` (the
            default) generates to the end. Presence is refreshed every
            :data:`PRESENCE_REFRESH` s and lasts :data:`PRESENCE_TTL` s, so a stream is
            stopped between ``abandon_after`` and ``abandon_after + PRESENCE_TTL + 1`` s after
            its last reader left.
        close_timeout: seconds allowed for closing a source and for one store call (a
            reader's too, up to ``outage_grace``); default 5.
        shutdown: an event (``anyio.Event``, ``asyncio.Event``, a
            :class:`~sse_llm.GracefulShutdown` ...) set when the server begins shutting down;
            the hub then shuts down as on leaving ``async with``. Under a
            :class:`~sse_llm.GracefulShutdown` middleware this happens by itself for streams
            started from its requests.
        outage_grace: seconds (default 30) the store may fail (a Redis restart, a network cut) while
            producers keep generating and hold unstored events in memory, and readers wait
            and retry; a longer outage ends the stream in the store (readers get an ``error``
            event, code ``store_unavailable``) while its producer still runs to the end for
            its completion hook (reason ``error``). Also how long a producer's liveness
            outlasts its last refresh (plus :data:`PRESENCE_TTL`), and for how long after a
            store restart a request for a stream the store does not know is told to come
            back (``RedisStore``: the stream may be one the restart lost, being stored again).
            Give every hub of an app the same value. Default 30.
        outage_bytes: the most unstored event bytes one producer holds meanwhile (1 MB by
            default); beyond it the stream is given up as after ``outage_grace``.

    Raises:
        TypeError: a time that is not a number, an ``outage_bytes`` that is not an ``int``.
        ValueError: ``keep`` is below :data:`MIN_KEEP`, or ``abandon_after`` /
            ``close_timeout`` / ``outage_grace`` / ``outage_bytes`` is not positive, or a time
            is NaN or infinite.
    """

    def __init__(
        self,
        store: StreamStore,
        *,
        keep: float = 300.0,
        abandon_after: float | None = None,
        close_timeout: float = 5.0,
        shutdown: ShutdownSignal | None = None,
        outage_grace: float = 30.0,
        outage_bytes: int = 1_000_000,
    ) -> None:
        if isinstance(keep, int | float) and keep < MIN_KEEP:
            raise ValueError(f"keep must be at least {MIN_KEEP} seconds: {keep}")
        check_seconds("keep", keep)  # a type, NaN, infinity
        check_seconds("abandon_after", abandon_after, optional=True)
        check_seconds("close_timeout", close_timeout)
        check_seconds("outage_grace", outage_grace)
        if isinstance(outage_bytes, bool) or not isinstance(outage_bytes, int):
            raise TypeError(f"outage_bytes must be an int, not {type(outage_bytes).__name__}")
        if outage_bytes <= 0:
            raise ValueError(f"outage_bytes must be positive: {outage_bytes}")
        self.store = store
        self.keep = keep
        self.abandon_after = abandon_after
        self.close_timeout = close_timeout
        self.shutdown = shutdown
        self.outage_grace = outage_grace
        self.outage_bytes = outage_bytes
        #: Seconds a producer's liveness lasts after a refresh: through a whole outage grace,
        #: during which the producer may fail to reach the store while every other process
        #: reaches it (its readers there must not take it for dead), plus the usual margin.
        self.liveness_ttl: float = outage_grace + PRESENCE_TTL
        self._producers: dict[str, _Producer] = {}
        self._task_group: TaskGroup | None = None
        # The cancel listener and the shutdown waiter. Made in __aenter__: a hub is often made
        # at import time, outside any event loop.
        self._services: anyio.CancelScope | None = None
        self._closing: anyio.Event | None = None  # set once shutdown has begun
        self._graceful: set[GracefulShutdown] = set()  # whose signals shut the hub down

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
        # The kind of failure since the last subscription: an outage is logged once, not per
        # retry, and again only if it fails in another way.
        failing: type[BaseException] | None = None

        def ready() -> None:
            nonlocal started, failing
            if failing is not None:
                failing = None
                logger.info("watching for stream cancel requests again")
            if not started:
                started = True
                task_status.started()

        while True:
            try:
                await self.store.watch_cancels(self._cancel_requested, ready)
            except Exception as exc:
                if not started:
                    raise  # the store is unreachable at startup: fail loudly
                if type(exc) is not failing:
                    failing = type(exc)
                    logger.exception(
                        "watching for stream cancel requests failed; retrying every second"
                    )
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
        self, source: Source | Awaitable[Source], **options: Unpack[ProducerOptions]
    ) -> str:
        """Start producing ``source`` in the background; return the new stream's id.

        Args:
            source: anything :class:`~sse_llm.EventStream` streams (text, LLM events,
                provider chunks, ready-made events, an awaitable of a source). An ``id`` a
                ready-made event carries is overridden by the hub's (the last ``id:`` line of
                an event wins, WHATWG HTML §9.2.6).
            **options: :class:`~sse_llm.resume.ProducerOptions`, those of
                :class:`~sse_llm.StreamOptions` that apply to a producer: ``format`` (a
                ``text/event-stream`` format, default
                :class:`~sse_llm.formats.NamedEventsFormat`), ``on_complete``,
                ``close_timeout`` (default the hub's), ``keep_text``, ``choice``,
                ``sync_limiter``. ``on_complete`` is called once with the
                :class:`~sse_llm.StreamResult` when the producer ends: reason ``completed``,
                ``error``, ``shutdown`` (the hub's exit), ``cancelled`` (:meth:`cancel`) or
                ``abandoned`` (``abandon_after``); also ``error`` when the store failed
                (``result.error`` is the store's exception).

        Returns:
            the stream id: 24 URL-safe characters (144 random bits, so unguessable), valid in
            a URL path, to pass to :meth:`response` or :meth:`cancel`.

        Raises:
            TypeError: a source that cannot be streamed, or an option that is unknown, of the
                wrong type, or not for producers (``heartbeat``, ``send_timeout``,
                ``headers``, ``shutdown``: readers and the hub have their own).
            ValueError: the format is not ``text/event-stream`` (other formats have no event
                ids, so nothing to resume from). The source is then left untouched.
            RuntimeError: the hub is not running (``async with hub:``) or is shutting down
                (also when that began while the stream was being created: the stream is then
                finished in the store and the source closed).
            Exception: whatever the store raised: while creating the stream (the source is
                then left untouched, for the caller to close), or just after (the stream is
                then finished and the source closed).
            TimeoutError: the store did not answer one of these calls within the hub's
                ``close_timeout`` (the same two cases).
        """
        check_source(source, "StreamHub.start")
        given = resolve(options, binding="StreamHub.start", exclude=NOT_FOR_PRODUCERS)
        graceful = current_shutdown()
        wire = given.format
        if wire.media_type != SSE_MEDIA_TYPE:
            raise ValueError(
                f"only {SSE_MEDIA_TYPE} streams can be resumed (WHATWG HTML §9.2 event ids), "
                f"not {wire.media_type}"
            )
        task_group = self._task_group
        if task_group is None or self._closing is None or self._closing.is_set():
            raise RuntimeError("the StreamHub is not running: enter it with `async with hub:`")
        stream_id = new_stream_id()
        meta = encode_meta(wire)
        # Each store call within close_timeout, as everywhere in the hub: a frozen store and a
        # client without a socket timeout must not hold the request that starts a stream.
        with anyio.fail_after(self.close_timeout):
            await self.store.create(stream_id, meta)
        try:
            # Before the id is handed out: no reader may find the producer not yet alive.
            with anyio.fail_after(self.close_timeout):
                await self.store.touch_producer(stream_id, self.liveness_ttl)
            closing = self._closing
            if closing is None or closing.is_set() or self._task_group is not task_group:
                # Shutdown began while the store was creating the stream.
                raise RuntimeError("the StreamHub is shutting down: no new streams")
            producer = _Producer(stream_id)
            producer.writer = StoreWriter(
                self.store,
                stream_id,
                meta,
                grace=self.outage_grace,
                grace_bytes=self.outage_bytes,
                timeout=self.close_timeout,
                liveness_ttl=self.liveness_ttl,
                # A store keeps no more (MemoryStore, RedisStore); a store of another kind
                # without the attribute has every record kept for it.
                keep_records=getattr(self.store, "max_events", None),
            )
            hook = given.on_complete

            async def complete(result: StreamResult) -> None:
                await self._complete(producer, hook, result)

            config = dataclasses.replace(
                given,
                heartbeat=None,  # readers send their own heartbeats
                send_timeout=None,  # the store is the only client
                on_complete=complete,
                keep_text=given.text_kept,  # the app's hook, not the hub's, reads the text
                shutdown=producer.shutdown,
                close_timeout=options.get("close_timeout", self.close_timeout),
            )
        except BaseException:
            await self._abort(stream_id, source)
            raise
        self._producers[stream_id] = producer
        if graceful is not None and graceful not in self._graceful:
            # Started under a GracefulShutdown: its stop signal shuts the hub down too.
            self._graceful.add(graceful)
            graceful.on_trigger(threadsafe(self._begin_shutdown))
        name = f"sse-llm stream {shown(stream_id)}"  # task names show in logs: not the whole id
        task_group.start_soon(self._produce, producer, source, config, graceful, name=name)
        return stream_id

    async def _abort(self, stream_id: str, source: Source | Awaitable[Source]) -> None:
        """Undo a :meth:`start` that failed after the store created the stream: finish it
        there and close the source, which never started (as ``EventStream`` closes one)."""
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(self.close_timeout):
                try:
                    await self.store.finish(stream_id, self.keep)
                except Exception:
                    logger.exception("finishing a detached stream that never started failed")
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
        return parse_last_event_id(last_event_id) is not None

    def produces(self, stream_id: str) -> bool:
        """Whether this hub (this process) runs the producer of ``stream_id``."""
        return stream_id in self._producers

    def response(self, last_event_id: str, **options: Unpack[ResumeOptions]) -> ResumeStream:
        """An ASGI app that sends a stream's events after ``last_event_id``, then the live rest.

        Args:
            last_event_id: a stream id (from the first event) or a ``Last-Event-ID``.
            **options: :class:`~sse_llm.resume.ResumeOptions`: ``heartbeat``, seconds without
                output before the format's keep-alive comment is sent (default 15;
                ``None`` disables); ``send_timeout``, seconds one send may wait on a client
                that is not reading before the response is ended, the producer going on
                (default 30; ``None`` disables); ``headers``, extra response headers.

        See :class:`ResumeStream` for the statuses. For Starlette/FastAPI,
        ``sse_llm.starlette.ResumeResponse`` wraps this in a ``Response``.

        Raises:
            TypeError: an option a reader does not take (``format``), an unknown one or a
                wrong type.
            ValueError: a non-positive ``heartbeat`` or ``send_timeout``, or a header that cannot be
                sent (``Connection`` and the like; CR or LF in a name or value; a value outside
                Latin-1).
        """
        return ResumeStream(self, last_event_id, **options)

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

        Raises:
            Exception: whatever the store raised passing the request on.
            TimeoutError: the store did not answer within the hub's ``close_timeout``.
        """
        position = parse_last_event_id(stream_id)
        if position is None:
            return False
        producer = self._producers.get(position[0])
        if producer is None:
            with anyio.fail_after(self.close_timeout):
                return await self.store.request_cancel(position[0])
        if producer.writer is not None and producer.writer.closing:
            return False  # the answer has ended: its end is being stored, its hook runs
        self._stop(producer, "cancelled")
        with anyio.move_on_after(self.close_timeout + 1.0):
            await producer.done.wait()
        return True

    # -- the producer -----------------------------------------------------------------------

    async def _produce(
        self,
        producer: _Producer,
        source: Source | Awaitable[Source],
        config: Config,
        graceful: GracefulShutdown | None,
    ) -> None:
        engine = StreamEngine(
            config.format,
            keep_text=config.keep_text,
            choice=config.choice,
            event_ids=producer.stream_id,
        )

        writer = producer.writer
        assert writer is not None

        async def store_units(units: Units, more: bool) -> None:
            # The pump sends units in the order the engine numbered them: the last has seq
            # engine.seq. The store never holds the producer up (see StoreWriter).
            writer.put(list(enumerate(units, engine.seq - len(units) + 1)))

        async def wait_stop() -> EndReason:
            await producer.stop.wait()
            return producer.stop_reason or "cancelled"

        try:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(writer.run)
                task_group.start_soon(self._keep_alive, producer)
                if self.abandon_after is not None:
                    task_group.start_soon(self._watch_readers, producer, self.abandon_after)
                pump = Pump(source, engine, config, store_units, shutdown=graceful)
                await pump.run(wait_stop)  # its hook (_complete) stored everything first
                task_group.cancel_scope.cancel()
        except Exception:
            logger.exception("a detached stream's producer failed")
        finally:
            with anyio.CancelScope(shield=True):
                if not writer.closing:  # the producer failed or was cancelled: still end it
                    with anyio.move_on_after(self.close_timeout):
                        await writer.close(self.keep)
                self._producers.pop(producer.stream_id, None)
                producer.done.set()

    async def _complete(
        self, producer: _Producer, hook: CompletionHook | None, result: StreamResult
    ) -> None:
        # Everything stored (through an outage up to the grace) before the hook says how the
        # stream ended. At a shutdown the store gets close_timeout, not outage_grace: the
        # process is about to be stopped (a deploy's kill timeout is often 30 s), and the
        # hook must run first; readers elsewhere then learn of the end by the liveness.
        writer = producer.writer
        if writer is not None:
            with anyio.CancelScope() as storing:
                async with anyio.create_task_group() as task_group:

                    async def cut_at_shutdown() -> None:
                        # Also for a stream that ended before the signal and still waits on
                        # the store: the signal bounds every wait for it.
                        await producer.shutdown.wait()
                        storing.deadline = min(
                            storing.deadline, anyio.current_time() + self.close_timeout
                        )

                    task_group.start_soon(cut_at_shutdown)
                    await writer.close(self.keep)
                    task_group.cancel_scope.cancel()
            failure = writer.error or (writer.last_failure if storing.cancelled_caught else None)
            if failure is not None:
                if writer.error is not None and result.reason != "shutdown":
                    result.reason = "error"
                if result.error is None:
                    result.error = failure
        if hook is not None:
            outcome = hook(result)
            if inspect.isawaitable(outcome):  # what a sync hook returns (a row id) is ignored
                await outcome

    async def _keep_alive(self, producer: _Producer) -> None:
        writer = producer.writer
        assert writer is not None
        failing = False
        while True:
            await anyio.sleep(PRESENCE_REFRESH)
            if writer.finished:
                return  # the store has the end (or never will): no liveness to keep
            # Given up: nothing more will be stored. Without liveness its readers end (code
            # store_unavailable) instead of waiting for an end that never comes.
            given_up = writer.error is not None
            try:
                with anyio.fail_after(self.close_timeout):  # a hung store must not hang it
                    await self.store.touch_producer(
                        producer.stream_id, _LIVENESS_ENDED if given_up else self.liveness_ttl
                    )
            except LookupError:
                # The store lost the stream, perhaps in a restart too quick for any call to
                # fail (a Redis client retries): the writer stores it again whole.
                if given_up:
                    return
                if not failing:
                    logger.warning("a detached stream is missing from the store; storing it again")
                failing = True
                writer.store_failed()
            except Exception:
                if not failing:  # once per outage, not every second
                    logger.exception("refreshing a detached stream's liveness failed")
                failing = True
                writer.store_failed()
            else:
                if given_up:
                    return
                failing = False

    async def _watch_readers(self, producer: _Producer, abandon_after: float) -> None:
        last_seen = time.monotonic()
        interval = min(abandon_after / 4, PRESENCE_REFRESH)
        while True:
            await anyio.sleep(interval)
            try:
                with anyio.fail_after(self.close_timeout):
                    seen = await self.store.has_reader(producer.stream_id)
            except Exception:
                seen = True  # a store outage is no reason to throw the answer away
            now = time.monotonic()
            if seen:
                last_seen = now
            elif now - last_seen >= abandon_after:
                self._stop(producer, "abandoned")
                return
