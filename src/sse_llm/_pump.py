"""The stream pump: one loop that feeds a :class:`~sse_llm.StreamEngine` and sends what it
returns, for every binding (ASGI, Django, Flask, WebSocket, the resumable hub).

A binding gives the pump two things:

- ``send``: delivers units to the client. Either an ASGI ``send`` (``asgi=True``: each call
  becomes one ``http.response.body`` message) or ``send(units, more)`` (a memory object
  stream, WebSocket messages, a store). It raises ``OSError`` once the client is gone.
- ``wait_client()``: returns once the client is gone: an end reason (``"disconnected"``), or
  an ASGI message (so an ASGI ``receive`` is passed as is: ``http.disconnect`` ends the
  stream, anything else is ignored), or ``None`` for a wake-up that means nothing.

The pump runs the source (the producer) and watches the client (the watcher) in two tasks:

- the producer iterates the source, feeds the engine, and sends; it ends with the engine's
  last units and closes the source. Each event goes out in one send, so a heartbeat can never
  land inside one;
- the watcher waits on ``wait_client()`` so that a disconnect cancels the producer at once,
  even while the source waits for an LLM's next token (Starlette's ``StreamingResponse``,
  under ASGI 2.4+, only notices on the next failed send); between those waits it sends the
  format's keep-alive after ``heartbeat`` seconds without output, sends text the format held
  back, and ends a send that waited longer than ``send_timeout``.

Which task runs which, on asyncio, follows what a paced event costs. Each time the source
resumes, its task resumes every coroutine frame between the task's root and the source. When
the pump is called from a short chain (a plain ASGI app, Django's or Flask's binding, the
hub), the producer runs in the calling task and the watcher in a second one, as a
hand-written ASGI loop does: a source that never waits finishes before the watcher first
runs, so a short answer costs no timer and no extra turn of the event loop. Under a
framework's middleware chain (a Starlette or FastAPI route) the producer gets a task of its
own and the calling task watches, so that a paced event resumes the producer's few frames,
not the whole chain. The binding tells which (``inline``); an ASGI binding reads it from the
scope (:func:`inline_for`), since walking the frames to count them would turn each into a
frame object that lives as long as the request.

No task, timer or lock is made per event: the producer records when it sent last and whether
it is inside ``send``, and the watcher reads those. The completion hook runs in the calling
task, shielded, once both are done.

On asyncio the pump uses the event loop's own task, timer and timeout; elsewhere (trio) an
anyio task group and cancel scopes. An anyio task group and its scopes cost several times a
raw ASGI loop's whole per-request work, and the first use of anyio's asyncio backend in a
process imports it (~60 ms), which must not happen in the middle of a disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import AsyncGeneratorType
from typing import Any

import anyio
import anyio.lowlevel

from ._engine import StreamEngine
from ._formats import Units
from ._options import Config
from ._providers import translate_exception
from ._result import EndReason, StreamResult
from ._shutdown import GracefulShutdown, current_shutdown
from ._sources import EnteredStream, ThreadedIterator, aclose_source, aiter_source
from ._types import ShutdownSignal, Source

__all__ = [
    "Pump",
    "SendUnits",
    "WaitClient",
    "abandon_unread",
    "first_failure",
    "inline_for",
    "is_cancellation",
]

logger = logging.getLogger("sse_llm")

#: Delivers units to the client; ``more=False`` with the last ones. Raises ``OSError`` when
#: the client is gone.
SendUnits = Callable[[Units, bool], Awaitable[None]]
#: Returns an end reason once the client is gone, an ASGI message (``http.disconnect`` is the
#: client gone), or ``None`` for a wake-up that means nothing.
WaitClient = Callable[[], Awaitable[EndReason | Mapping[str, Any] | None]]

_monotonic = time.monotonic


class Pump:
    """Runs one stream to its end. Made per response by a binding; see the module docs.

    Args:
        source: what the stream is made from (or an awaitable of it, awaited first: an error
            it raises becomes the stream's ``error`` event).
        engine: the stream's engine.
        config: the resolved options (heartbeat, send timeout, close timeout, hook, shutdown).
        send: delivers units: ``send(units, more)``, or an ASGI ``send`` with ``asgi=True``.
        asgi: ``send`` is an ASGI ``send``.
        inline: on asyncio, run the source in the calling task and watch the client in a
            second one; ``False`` under a framework's middleware chain, where the source gets
            a task of its own (see the module docs and :func:`inline_for`).
        shutdown: the :class:`~sse_llm.GracefulShutdown` that ends this stream at a stop
            signal; by default the one the current request runs under, if any.
        counted_only: the stream ends by itself at a shutdown (a resume reader, whose
            producer's stored shutdown event ends it): the shutdown counts it, no more.
        thread_end: given, a sync source runs in one thread of its own (every step and the
            close), and this runs there at its end (Django closes the thread's database
            connections); see :class:`~sse_llm._sources.ThreadedIterator`. asyncio only.
    """

    __slots__ = (
        "_asgi",
        "_cancel_sent",
        "_closing",
        "_counted_only",
        "_failure",
        "_finished",
        "_host",
        "_host_stopped",
        "_idle_send",
        "_in_send",
        "_inline",
        "_iterator",
        "_last_output",
        "_producer",
        "_scope",
        "_shutdown",
        "_thread_end",
        "_timed_out",
        "_watcher",
        "_watching",
        "config",
        "engine",
        "reason",
        "send",
        "source",
    )

    def __init__(
        self,
        source: Source | Awaitable[Source],
        engine: StreamEngine,
        config: Config,
        send: Any,
        *,
        asgi: bool = False,
        inline: bool = True,
        shutdown: GracefulShutdown | None = None,
        counted_only: bool = False,
        thread_end: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self.engine: StreamEngine = engine
        self.config: Config = config
        self.send: Any = send
        self._asgi = asgi
        self._inline = inline
        self._shutdown = shutdown  # else the one the request runs under, if any
        # GracefulShutdown only counts it: its source ends by itself at a shutdown (a reader
        # of a stream this process produces ends with the producer's stored shutdown event).
        self._counted_only = counted_only
        self._thread_end = thread_end
        #: Why the stream ended, set by whoever ended it first.
        self.reason: EndReason | None = None
        self._iterator: AsyncIterator[Any] | None = None
        self._host: asyncio.Task[Any] | None = None  # the calling task, on asyncio
        # On asyncio, the tasks that run the producer and the watcher: one is the calling task.
        self._producer: asyncio.Task[Any] | None = None
        self._watcher: asyncio.Task[Any] | None = None
        self._cancel_sent = False  # end() cancelled the calling task (it runs the producer)
        self._scope: anyio.CancelScope | None = None  # the task group's scope, elsewhere
        self._host_stopped = False  # the producer stopped the watcher: not a cancellation
        self._timed_out = False  # the watcher's timer went off: not a cancellation
        self._in_send = False
        self._last_output = _monotonic()
        # Set while the watcher is sending (an asyncio.Event on asyncio).
        self._idle_send: asyncio.Event | anyio.Event | None = None
        self._closing = False  # the producer is sending the last units
        self._finished = False  # the producer is done: a disconnect now changes nothing
        self._failure: BaseException | None = None  # the source's, past Exception
        self._watching = False  # the calling task is still in its watch loop

    # -- the whole run ----------------------------------------------------------------------

    async def run(self, wait_client: WaitClient) -> StreamResult:
        """Stream to the end, then run the completion hook; returns the result.

        Cancelling the calling task (a server that force-cancels its requests) still closes
        the source and runs the hook (reason ``shutdown``) before the cancellation goes on.
        """
        shutdown = self._shutdown = self._shutdown or current_shutdown()
        if shutdown is not None:
            # Ends it at SIGTERM/SIGINT (see sse_llm.GracefulShutdown), or only counts it.
            shutdown.enter(self, end=not self._counted_only)
        try:
            host = _asyncio_task()
            if host is not None and self.config.shutdown is None:
                self._host = host
                if self._inline:
                    await self._produce_here(host, wait_client)
                else:
                    await self._watch_here(host, wait_client)
            else:
                await self._run_in_task_group(wait_client)
        finally:
            try:
                if not self._finished:
                    # The producer never ran: cancelled before its first step.
                    await self._cut_short()
                if self.config.on_complete is not None:
                    await self._complete()
            finally:
                if shutdown is not None:
                    shutdown.leave(self)
        return self.engine.result

    async def _produce_here(self, host: asyncio.Task[Any], wait_client: WaitClient) -> None:
        """The producer in the calling task, the watcher in a second one (a short chain)."""
        self._producer = host
        watcher = self._watcher = host.get_loop().create_task(self._watch(wait_client))
        try:
            await self._produce()
        except asyncio.CancelledError:
            if not self._cancel_sent or host.uncancel() > 0:
                # Cancelled from outside (a server that stops, an outer cancel scope): the
                # producer has closed the source and sent what it could.
                self.reason = self.reason or "shutdown"
                raise
        else:
            if self._cancel_sent and host.cancelling():
                host.uncancel()  # a source that swallowed end()'s cancel
        finally:
            if not watcher.done():
                # Not started yet (the source never waited: nothing to watch for) or waiting.
                watcher.cancel()
                if self._watching:
                    await asyncio.wait({watcher})
            # Read even while another exception leaves: else asyncio logs it as never retrieved.
            failure = watcher.exception() if watcher.done() and not watcher.cancelled() else None
        if failure is not None:
            try:
                raise failure
            finally:
                failure = None  # no reference cycle through this frame

    async def _run_in_task_group(self, wait_client: WaitClient) -> None:
        """The producer and the watcher in an anyio task group (trio, or a ``shutdown`` event
        to wait for). A failure reaches the caller as itself, as it does on the asyncio
        path, not wrapped in an exception group: the tasks end one another, so it is one
        failure, unless a second one came while they ended (that one is logged). A group of
        cancellations only goes on as it is: the cancel scope that owns them takes them."""
        failure: BaseException | None = None
        try:
            async with anyio.create_task_group() as task_group:
                self._scope = task_group.cancel_scope
                task_group.start_soon(self._produce)
                if self.config.shutdown is not None:
                    task_group.start_soon(self._wait_shutdown, self.config.shutdown)
                await self._watch(wait_client)
        except BaseExceptionGroup as group:
            failure = first_failure(group, anyio.get_cancelled_exc_class())
            if failure is None:
                raise
        if failure is not None:
            try:
                raise failure  # outside the handler: its own context and cause, as raised
            finally:
                failure = None  # no reference cycle through this frame

    async def _watch_here(self, host: asyncio.Task[Any], wait_client: WaitClient) -> None:
        """The watcher in the calling task, the producer in a task of its own (a long chain)."""
        self._watcher = host
        producer = self._producer = host.get_loop().create_task(self._produce())
        try:
            await self._watch(wait_client)
        except asyncio.CancelledError:
            if not (self._host_stopped and host.uncancel() == 0):
                # Cancelled from outside (a server that stops, an outer cancel scope): the
                # producer closes the source and sends what it can first.
                self.reason = self.reason or "shutdown"
                producer.cancel()
                await asyncio.wait({producer})
                if not producer.cancelled() and (lost := producer.exception()) is not None:
                    logger.error("the stream's producer failed as it ended", exc_info=lost)
                raise
        except Exception:
            await asyncio.wait({producer})  # _watch ended it: let it close the source
            if not producer.cancelled() and (lost := producer.exception()) is not None:
                logger.error("the stream's producer failed too", exc_info=lost)
            raise
        try:
            await producer
        except asyncio.CancelledError:
            # The producer ended by our cancel (a disconnect, a stop button), unless this
            # task is being cancelled too (the cancel reached it through us).
            if host.cancelling():
                raise

    async def abandon(self, reason: EndReason) -> StreamResult:
        """End a stream that never started (the client was gone before the headers): close
        the source and run the hook."""
        self.reason = reason
        await self._cut_short()
        await self._complete()
        return self.engine.result

    def end(self, reason: EndReason) -> None:
        """End the stream now (a binding's stop button, a shutdown), unless it already ended."""
        if self.reason is None and not self._finished:
            self.reason = reason
            if self._producer is not None:
                self._cancel_sent = self._producer is self._host
                self._producer.cancel()
            elif self._scope is not None:
                self._scope.cancel()

    # -- the producer -----------------------------------------------------------------------

    async def _deliver(self, units: Units, more: bool) -> None:
        if self._asgi:
            body = units[0] if len(units) == 1 else b"".join(units)
            await self.send({"type": "http.response.body", "body": body, "more_body": more})
        else:
            await self.send(units, more)

    async def _produce(self) -> None:
        engine = self.engine
        send = self.send
        asgi = self._asgi
        error: Exception | None = None
        sent = 0
        if self.reason is not None:  # ended (a shutdown) before it could start
            await self._cut_short()
            self._stop_if_watching()
            return
        try:
            first = engine.start_units()
            if first or asgi:
                self._in_send = True  # timed out like any other send
                self._last_output = _monotonic()
                # Also when there is nothing yet, a comment: the ASGI HTTP spec lets a server
                # hold the status line and headers until the first body message (daphne
                # does), nginx speaking HTTP/2 over TLS until the first body byte, and a
                # thinking model may take seconds to give its first token.
                await self._deliver(first or (engine.keepalive,), True)
                self._in_send = False
            try:
                source = self.source
                iterator: AsyncIterator[Any]
                if type(source) is AsyncGeneratorType:  # the usual source: its own iterator
                    self._iterator = iterator = source
                else:
                    if inspect.isawaitable(source):
                        source = await source  # an SDK call the view did not await
                        self.source = source
                    self._iterator = iterator = aiter_source(
                        source, self.config.sync_limiter, self._thread_end
                    )
            except Exception as exc:
                error = exc
            else:
                anext = iterator.__anext__  # not `async for`: it would call __aiter__ again
                feed = engine.feed_units
                try:
                    while True:
                        item = await anext()
                        while self._idle_send is not None:
                            # Feed only once the watcher's sends are over (a slow heartbeat
                            # can be followed at once by the next): what the engine writes
                            # goes out in the order it was written (event ids rely on it).
                            await self._idle_send.wait()
                        units = feed(item)
                        if not units:
                            continue
                        self._in_send = True
                        self._last_output = _monotonic()
                        if asgi:  # the hot path, inlined: one coroutine call per event
                            try:
                                (body,) = units  # one event: the usual case
                            except ValueError:
                                body = b"".join(units)
                            await send(
                                {"type": "http.response.body", "body": body, "more_body": True}
                            )
                        else:
                            await send(units, True)
                        self._in_send = False
                        sent += len(units)
                        if engine.ended:  # the provider reported an error: it was the last
                            break
                except StopAsyncIteration:
                    pass  # the source ran out
                except Exception as exc:
                    if self._in_send:
                        raise  # the transport's, not the source's: handled below
                    error = exc  # the source's or the engine's: the stream's error event
            engine.result.events_sent += sent
            if error is not None:
                _log_source_error(error)
            await self._last_units(error)
        except OSError:
            # ASGI 2.4: send raises once the client is gone.
            engine.result.events_sent += sent
            self.reason = self.reason or "disconnected"
            await self._cut_short()
            await self._stop_watching()
        except Exception:
            # A transport that failed in another way than a gone client: a bug to see.
            engine.result.events_sent += sent
            self.reason = self.reason or "error"
            await self._cut_short()
            self._stop_if_watching()  # a watcher in the calling task would wait for the client
            raise
        except BaseException as exc:  # cancelled (by a disconnect, a stop, the server)
            engine.result.events_sent += sent
            # Or not: KeyboardInterrupt, SystemExit, a library's own BaseException from the
            # source. The stream is cut as by a stop, bounded by close_timeout, but ends as an
            # error (the client gets the error event, the hook the text and the exception);
            # then it goes on. Once the stream was ended (the usual case: a disconnect's
            # cancel), whatever the source raised on its way out is no failure of its own.
            if self.reason is None and not self._in_send and not self._is_cancellation(exc):
                self._failure = exc
                _log_source_error(exc)
            await self._cut_short()
            self._stop_if_watching()  # ended by end() from elsewhere: the watcher is done too
            raise

    def _is_cancellation(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised past ``Exception`` while the source ran, stops the stream
        from outside rather than being the source's failure: a cancellation, a group of them
        only (a source's own trio nursery), or ``GeneratorExit`` (what closing a suspended
        coroutine throws in)."""
        cancelled: tuple[type[BaseException], ...] = (asyncio.CancelledError, GeneratorExit)
        if self._host is None:
            cancelled += (anyio.get_cancelled_exc_class(),)
        return is_cancellation(exc, cancelled)

    async def _last_units(self, error: Exception | None) -> None:
        """The engine's last units, then the source closed (the stream ended by itself)."""
        self._closing = True
        while self._idle_send is not None:
            await self._idle_send.wait()
        units = self.engine.close_units("completed", error)
        self._in_send = True  # the watcher times out a final send too
        self._last_output = _monotonic()
        try:  # noqa: SIM105 (runs once per stream: no context manager object for it)
            await self._deliver(units, False)
        except OSError:
            pass  # the client left as the stream ended: it ended all the same
        self._in_send = False
        self._finished = True
        await self._close_source()
        await self._stop_watching()

    async def _cut_short(self) -> None:
        """The stream was cut (disconnect, timeout, shutdown): close the source, and send the
        last units if the client can still take them (shutdown), bounded and shielded."""
        if self._finished:
            return
        self._finished = True
        # Cancelled with no reason given: from outside, by a server that is stopping (or the
        # source raised past Exception).
        reason = self.reason = self.reason or ("shutdown" if self._failure is None else "error")
        if self._closing and reason == "timeout" and self.engine.result.reason == "completed":
            # The source ran out, but its last send never got through: not "completed".
            self.engine.result.reason = "timeout"
        if (
            reason != "shutdown"
            and self._failure is None
            and self._idle_send is None
            and self._source_finished()
        ):
            self.engine.close_units(reason)  # nothing left that could wait: no deadline
            return
        try:
            if self._host is not None:
                # A native timeout: on asyncio a cancel scope would shield from anyio cancels
                # only, and would import anyio's backend right in the middle of a disconnect.
                try:
                    async with asyncio.timeout(self.config.close_timeout):
                        await self._close_and_end(reason)
                except TimeoutError:
                    self._log_slow_close()
                return
            with anyio.CancelScope(shield=True) as shield:
                shield.deadline = anyio.current_time() + self.config.close_timeout
                await self._close_and_end(reason)
            if shield.cancelled_caught:
                self._log_slow_close()
        finally:
            # However the close went: the hook gets the text and the reason (a second call
            # writes and changes nothing).
            self.engine.close_units(reason)

    def _log_slow_close(self) -> None:
        logger.warning(
            "closing the stream took longer than close_timeout (%s s): its source (or its last "
            "event, to a client that does not read) is left as it is",
            self.config.close_timeout,
        )

    async def _close_and_end(self, reason: EndReason) -> None:
        await self._close_source()
        while self._idle_send is not None:
            await self._idle_send.wait()
        units = self.engine.close_units(reason, self._failure)
        if reason == "shutdown" or self._failure is not None:  # the client is still there
            # Or not: a gone client is an OSError (ASGI 2.4), or a closed memory stream from
            # an in-process client (Starlette's TestClient closed mid-stream).
            with contextlib.suppress(OSError, anyio.ClosedResourceError, anyio.BrokenResourceError):
                await self._deliver(units, False)

    def _source_finished(self) -> bool:
        """The source is an async generator that ran to its end or was cancelled out of: its
        ``finally`` has run and closing it would do nothing."""
        source = self.source
        return (
            type(source) is AsyncGeneratorType
            and source.ag_frame is None
            and self._iterator is source
        )

    async def _close_source(self) -> None:
        if self._source_finished():
            return
        # Also when iteration never started: an SDK stream holds an open upstream response.
        try:
            await aclose_source(self._iterator, self.source)
        except Exception:
            logger.exception("closing the stream source failed")
        finally:  # also when close_timeout (or the server) cancelled the wait for the close
            iterator = self._iterator
            if type(iterator) is EnteredStream:  # a sync SDK helper, read in threads
                iterator = iterator.iterator
            if type(iterator) is ThreadedIterator and self._shutdown is not None:
                # A sync source's close still under way in a thread, or left to the thread
                # still in its next(): a stop's drain waits for it, or the process would exit
                # first and the source's finally (an SDK response's close, metering) would
                # never run.
                iterator.count_close_in(self._shutdown, self.config.close_timeout)

    async def _stop_watching(self) -> None:
        """Let the watcher end. An ASGI server answers a pending ``receive()`` with
        ``http.disconnect`` once the response is complete (ASGI spec), so usually it ends by
        itself, at its next turn; if it is still watching after that, it is cancelled."""
        if self._host is not None:
            if self._watcher is self._host:
                self._host.get_loop().call_soon(self._stop_if_watching)
            # else the calling task stops its watcher once the producer returns
            return
        await anyio.lowlevel.checkpoint()
        self._stop_if_watching()

    def _stop_if_watching(self) -> None:
        if not self._watching and self.config.shutdown is None:
            return
        if self._host is not None:
            if self._watcher is self._host:
                self._host_stopped = True
                self._host.cancel()
        elif self._scope is not None:
            self._scope.cancel()

    # -- the watcher ------------------------------------------------------------------------

    async def _watch(self, wait_client: WaitClient) -> None:
        watcher = self._watcher  # None on anyio
        heartbeat = self.config.heartbeat
        send_timeout = self.config.send_timeout
        flush_interval = self.engine.flush_interval
        # Kept across a wake-up that means nothing (an ASGI server's first receive() is the
        # request body): one timer per stream, not one per wake-up (see _rearm).
        timer: asyncio.Handle | None = None
        self._watching = True
        try:
            while not self._finished:
                now = _monotonic()
                if self._in_send:
                    wake = None if send_timeout is None else self._last_output + send_timeout - now
                    if heartbeat is not None:
                        # The send may end while we wait: look again in time for a heartbeat.
                        wake = heartbeat if wake is None else min(wake, heartbeat)
                else:
                    wake = None if heartbeat is None else self._last_output + heartbeat - now
                    if send_timeout is not None:
                        # A send may start while we wait: wake in time to time it out.
                        wake = send_timeout if wake is None else min(wake, send_timeout)
                if flush_interval is not None:
                    wake = flush_interval if wake is None else min(wake, flush_interval)
                got: EndReason | Mapping[str, Any] | None = None
                if wake is None:
                    got = await wait_client()
                elif wake <= 0:
                    pass
                elif watcher is None:
                    with anyio.move_on_after(wake):
                        got = await wait_client()
                else:
                    # A timer that cancels this task, not a cancel scope (see the module docs).
                    timer = self._rearm(timer, watcher, wake)
                    try:
                        got = await wait_client()
                    except asyncio.CancelledError:
                        if not self._timed_out or watcher.uncancel() > 0:
                            raise  # (also) cancelled from outside
                    else:
                        if self._timed_out:
                            watcher.uncancel()  # wait_client() swallowed the timer's cancel
                    finally:
                        if self._timed_out:
                            # It went off (even if wait_client() swallowed its cancel).
                            timer = None
                            self._timed_out = False
                if self._finished:
                    return
                if got is not None and not isinstance(got, str):
                    got = "disconnected" if got["type"] == "http.disconnect" else None
                if got is not None:
                    if not self._closing:  # a disconnect during the last send is the end
                        self.end(got)
                    return
                if self._in_send:
                    if (
                        send_timeout is not None
                        and _monotonic() - self._last_output >= send_timeout
                    ):
                        logger.warning(
                            "the client read nothing for %s s (send_timeout); ending its stream",
                            send_timeout,
                        )
                        self.end("timeout")
                        return
                    continue
                units = self.engine.flush_units() if flush_interval is not None else ()
                due = heartbeat is not None and _monotonic() - self._last_output >= heartbeat
                if not (units or due):
                    continue
                if timer is not None:
                    timer.cancel()  # it must not go off in the middle of the send
                    timer = None
                if not await self._send_idle(units or (self.engine.keepalive,)):
                    logger.warning(
                        "the client read nothing for %s s (send_timeout); ending its stream",
                        send_timeout,
                    )
                    self.end("timeout")
                    return
        except Exception:
            # wait_client() failed: with nothing to watch the client, the stream ends too.
            self.end("error")
            raise
        finally:
            self._watching = False
            if timer is not None:
                timer.cancel()

    def _rearm(
        self, timer: asyncio.Handle | None, watcher: asyncio.Task[Any], wake: float
    ) -> asyncio.Handle:
        """A timer that goes off ``wake`` seconds from now: the pending one when it goes off
        by then, give or take a millisecond (the resolution of uvloop's timers; going off
        early only makes the watcher look again). asyncio keeps a cancelled timer, and a copy
        of the context for it, in its heap until it is due, so a watcher woken for nothing
        must not leave one behind."""
        loop = watcher.get_loop()
        if timer is not None:
            # uvloop's call_later() rounds to milliseconds: under half of one, it returns a
            # call_soon() handle (no ``when``), which goes off at the next turn anyway.
            when = getattr(timer, "when", None)
            if not timer.cancelled() and (when is None or when() <= loop.time() + wake + 0.001):
                return timer
            timer.cancel()
        return loop.call_later(wake, self._time_out)

    def _time_out(self) -> None:
        assert self._watcher is not None
        self._timed_out = True
        self._watcher.cancel()

    async def _send_idle(self, units: Units) -> bool:
        """Send a keep-alive or held text while the producer waits on its source.

        Returns False when the client did not take it within ``send_timeout``.
        """
        self._last_output = _monotonic()
        if self._host is not None:
            done: asyncio.Event | anyio.Event = asyncio.Event()
            self._idle_send = done
            try:
                async with asyncio.timeout(self.config.send_timeout):
                    await self._deliver(units, True)
                return True
            except TimeoutError:
                return False
            except OSError:
                return True  # the disconnect arrives through wait_client()
            finally:
                self._idle_send = None
                done.set()
        done = self._idle_send = anyio.Event()
        try:
            with anyio.move_on_after(self.config.send_timeout):
                await self._deliver(units, True)
                return True
            return False
        except OSError:
            return True
        finally:
            self._idle_send = None
            done.set()

    async def _wait_shutdown(self, shutdown: ShutdownSignal) -> None:
        await shutdown.wait()
        self.end("shutdown")

    # -- the end ----------------------------------------------------------------------------

    async def _complete(self) -> None:
        """Run the completion hook, shielded."""
        hook = self.config.on_complete
        if hook is None:
            return
        if self._host is not None:
            await _outlive_a_cancel(_call_hook(hook, self.engine.result), self.config.close_timeout)
            return
        with anyio.CancelScope(shield=True):
            await _call_hook(hook, self.engine.result)


async def _call_hook(hook: Callable[[StreamResult], object], result: StreamResult) -> None:
    try:
        outcome = hook(result)
        if inspect.isawaitable(outcome):  # what a sync hook returns (a row id) is ignored
            await outcome
    except Exception:
        logger.exception("the stream's on_complete hook failed")


async def _outlive_a_cancel(hook: Awaitable[None], grace: float) -> None:
    """Await ``hook`` in a task of its own, so that a server that force-cancels its request
    tasks (``task.cancel()``: no cancel scope can shield from that) does not cut it short: it
    gets up to ``grace`` more seconds, then the cancellation goes on."""
    host = asyncio.current_task()
    assert host is not None
    task = asyncio.ensure_future(hook)
    cancelled = False
    deadline: float | None = None
    loop = host.get_loop()
    while not task.done():
        timeout = None if deadline is None else deadline - loop.time()
        if timeout is not None and timeout <= 0:
            task.cancel()
            break
        try:
            await asyncio.wait({task}, timeout=timeout)
        except asyncio.CancelledError:
            if cancelled:
                task.cancel()  # cancelled again: the server insists
                raise
            cancelled = True
            host.uncancel()
            deadline = loop.time() + grace
    if cancelled:
        raise asyncio.CancelledError("the server cancelled the stream; its hook ran first")


def is_cancellation(exc: BaseException, cancelled: tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` is one of the ``cancelled`` classes, or a group of them only (a task
    group, such as a source's own trio nursery, that was cancelled)."""
    if isinstance(exc, BaseExceptionGroup):
        return exc.split(cancelled)[1] is None
    return isinstance(exc, cancelled)


async def abandon_unread(source: Any, config: Config) -> StreamResult:
    """End a response nobody will read (a ``HEAD``, one a server dropped unread) where no
    pump was made for it: the source closed unread, the hook run (reason ``disconnected``)."""
    return await Pump(source, config.engine(), config, _never_sends).abandon("disconnected")


async def _never_sends(units: Units, more: bool) -> None:
    raise OSError("the response is not read")  # abandon() sends nothing


def first_failure(
    group: BaseExceptionGroup[BaseException], cancelled: type[BaseException]
) -> BaseException | None:
    """The exception a task group's ``group`` stands for: the first that is not a
    cancellation (``cancelled``: the backend's class), the others logged; ``None`` if the
    group holds cancellations only."""
    _, failures = group.split(cancelled)
    if failures is None:
        return None
    first, *others = failures.exceptions
    for other in others:
        logger.error("the stream failed a second time as it ended", exc_info=other)
    return first


def inline_for(scope: Mapping[str, Any]) -> bool:
    """Whether an ASGI binding's pump should produce in the calling task: yes, unless a
    framework is in front. Starlette's app puts ``app`` in the scope and its ``Router``
    (FastAPI's too) ``router``; below them sits a middleware chain (a Starlette route is 13
    coroutine frames from the task's root, a FastAPI route 18; a plain ASGI function under
    uvicorn, 3)."""
    return "router" not in scope and "app" not in scope


def _asyncio_task() -> asyncio.Task[Any] | None:
    """The current asyncio task; ``None`` on another event loop (trio)."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


def _log_source_error(exc: BaseException) -> None:
    provider = translate_exception(exc)
    if provider is not None:
        logger.warning("provider error in stream: %s", provider.message)
    else:
        logger.error("exception in stream source", exc_info=exc)
