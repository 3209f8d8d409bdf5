"""Turning what the user hands us into an async iterator, and closing it again."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar

from ._options import SYNC_SOURCE_THREADS
from ._types import Source

logger = logging.getLogger("sse_llm")

__all__ = ["aclose_source", "aiter_source", "check_source", "sync_limiter"]

_END = object()
# One limiter per event loop (a RunVar, not a module global): anyio's own default limiter is
# made the same way.
_SYNC_LIMITER: RunVar[anyio.CapacityLimiter] = RunVar("sse_llm_sync_limiter")


def check_source(source: object, binding: str) -> None:
    """Refuse, where the response is built, what can never be streamed.

    Raises:
        TypeError: ``source`` is a ``str`` or ``bytes`` (almost always a mistake: the caller
            meant ``[text]``), a mapping or a pydantic model (a whole answer: an SDK call made
            without ``stream=True``), or neither an (async) iterable, an (async) context
            manager (an SDK's stream helper) nor an awaitable of one.
    """
    if hasattr(source, "__aiter__"):
        return  # the usual case first: a str or bytes has no __aiter__
    if isinstance(source, str | bytes | bytearray):
        raise TypeError(
            f"{binding} needs an iterable of items, not {type(source).__name__}: "
            f"to send one text, pass [text]"
        )
    if isinstance(source, Mapping) or hasattr(type(source), "model_fields"):
        # A pydantic model iterates its fields: a ChatCompletion, an Anthropic Message, a
        # LangChain AIMessage would stream as (name, value) pairs.
        raise TypeError(
            f"{binding} needs a stream, not a whole {type(source).__name__}: an SDK call "
            f"returns a stream only when asked (stream=True); to send one item, pass [item]"
        )
    if not (hasattr(source, "__iter__") or inspect.isawaitable(source) or _manages(source)):
        raise TypeError(
            f"{binding} needs an (async) iterable source or an awaitable of one, "
            f"not {type(source).__name__}"
        )


def sync_limiter() -> anyio.CapacityLimiter:
    """The event loop's limiter for sync sources (:data:`SYNC_SOURCE_THREADS` threads)."""
    try:
        return _SYNC_LIMITER.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(SYNC_SOURCE_THREADS)
        _SYNC_LIMITER.set(limiter)
        return limiter


def aiter_source(
    source: Source,
    limiter: anyio.CapacityLimiter | None,
    thread_end: Callable[[], None] | None = None,
) -> AsyncIterator[Any]:
    """An async iterator over ``source``.

    A sync iterable is iterated in worker threads, one ``next()`` per item, bounded by
    ``limiter`` (default :func:`sync_limiter`), so a blocking SDK call never stalls the event
    loop nor takes a thread from the app's own pool. With ``thread_end`` (asyncio only), every
    ``next()`` and the close run in one thread of the stream's own, and ``thread_end`` runs
    there after the close (Django closes the thread's database connections).

    Raises:
        TypeError: ``source`` is not iterable, or is a ``str``/``bytes``.
    """
    check_source(source, "a stream")
    iterator = _iterator_of(source, limiter, thread_end)
    if iterator is not None:
        return iterator
    if _manages(source):
        return EnteredStream(source, limiter, thread_end)
    raise TypeError(f"a stream source must be an (async) iterable, not {type(source).__name__}")


def _iterator_of(
    source: Any,
    limiter: anyio.CapacityLimiter | None,
    thread_end: Callable[[], None] | None = None,
) -> AsyncIterator[Any] | None:
    """An async iterator over an (async) iterable ``source``, ``None`` for anything else."""
    if hasattr(source, "__aiter__"):
        iterator: AsyncIterator[Any] = source.__aiter__()
        return iterator
    if _sync_iterable(source):
        return ThreadedIterator(iter(source), limiter, source, thread_end)
    return None


def _sync_iterable(source: Any) -> bool:
    return isinstance(source, Iterable) and not isinstance(source, str | bytes | bytearray)


def _manages(source: Any) -> bool:
    """An (async) context manager: an SDK's stream helper, unentered."""
    return hasattr(source, "__aenter__") or hasattr(source, "__enter__")


class EnteredStream:
    """The stream an (async) context manager gives, entered when the stream starts and exited
    when it is closed: an SDK's stream helper handed over unentered
    (``client.messages.stream(...)``, ``client.chat.completions.stream(...)``,
    ``client.responses.stream(...)``), whose exit closes the HTTP response. A sync one is
    entered, read and exited in worker threads, as a sync source is read; a close while its
    ``__enter__`` still runs (the client left before the first byte) leaves the exit to that
    thread, as :class:`ThreadedIterator` leaves a close to a thread in ``next()``.

    Raises (from the first ``__anext__``):
        TypeError: what the manager gives on entering is not an (async) iterable (a client
            or session object rather than a stream helper). It is exited first.
    """

    def __init__(
        self,
        manager: Any,
        limiter: anyio.CapacityLimiter | None,
        thread_end: Callable[[], None] | None = None,
    ) -> None:
        self.manager = manager
        self.limiter = limiter
        self.thread_end = thread_end
        self.is_async = hasattr(manager, "__aenter__")
        self.stream: Any = None
        self.iterator: AsyncIterator[Any] | None = None
        self.lock = threading.Lock()  # entered / close_requested, against the entering thread
        self.entered = False
        self.close_requested = False

    def __aiter__(self) -> EnteredStream:
        return self

    async def __anext__(self) -> Any:
        iterator = self.iterator
        if iterator is None:
            iterator = self.iterator = await self._enter()
        return await iterator.__anext__()

    async def _enter(self) -> AsyncIterator[Any]:
        manager = self.manager
        if self.is_async:
            stream = await manager.__aenter__()
            self.stream, self.entered = stream, True
            iterator = _iterator_of(stream, self.limiter, self.thread_end)
            if iterator is not None:
                return iterator
            await manager.__aexit__(None, None, None)
            self.entered = False
            raise self._not_a_stream(stream)
        limiter = self.limiter if self.limiter is not None else sync_limiter()
        stream = await anyio.to_thread.run_sync(
            self._enter_sync, limiter=limiter, abandon_on_cancel=True
        )
        if stream is _END:
            raise StopAsyncIteration  # closed while entering: the thread exited it
        # The exit runs where the stream is closed: in the thread that read it last.
        return ThreadedIterator(stream, self.limiter, _Exits(manager), self.thread_end)

    def _enter_sync(self) -> Any:
        """In a worker thread: enter, and hand over an iterator, unless a close came
        meanwhile (the waiting task was cancelled and is gone): then exit here."""
        manager = self.manager
        stream = manager.__enter__()
        iterator = iter(stream) if _sync_iterable(stream) else None
        with self.lock:
            closing = self.close_requested
            if not closing and iterator is not None:
                self.stream, self.entered = stream, True
                return iterator
        manager.__exit__(None, None, None)
        if closing:
            return _END
        raise self._not_a_stream(stream)

    def _not_a_stream(self, stream: Any) -> TypeError:
        return TypeError(
            f"{type(self.manager).__name__} gives {type(stream).__name__} when entered, "
            "not a stream: a source may be an SDK's stream helper (client.messages.stream"
            "(...)), not any context manager"
        )

    async def aclose(self) -> None:
        with self.lock:
            self.close_requested = True
            entered, self.entered = self.entered, False
        if not entered:
            return  # never entered, or the entering thread exits it (see _enter_sync)
        if isinstance(self.iterator, ThreadedIterator) and not self.is_async:
            await self.iterator.aclose()  # exits the manager too (see _Exits)
            return
        try:
            await aclose_source(self.iterator, self.stream)
        finally:
            if self.is_async:
                await self.manager.__aexit__(None, None, None)
            else:  # entered, but the iterator was never made
                await anyio.to_thread.run_sync(self.manager.__exit__, None, None, None)


class _Exits:
    """Closing it exits a sync context manager (what :class:`ThreadedIterator` closes)."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    def close(self) -> None:
        self.manager.__exit__(None, None, None)


class ClosesCounter(Protocol):
    """What counts pending closes in (``GracefulShutdown``): ``hold`` from the event loop,
    ``release`` from the worker thread that closed."""

    def hold(self, token: object, timeout: float) -> None: ...

    def release(self, token: object) -> None: ...


class ThreadedIterator:
    """A sync iterator, one ``next()`` per worker thread call.

    A cancel (the client left) does not wait for a ``next()`` blocked in its thread: the
    stream ends at once, and the item that call returns later is dropped, so the result holds
    only what the client was sent. A generator cannot be closed while a thread runs it, so
    :meth:`aclose` leaves the closing to that thread when its ``next()`` returns
    (:meth:`count_close_in` makes a stop's drain wait for it: the process must not exit
    first).

    Every ``next()`` and the close run in one :class:`contextvars.Context`, as they would in a
    plain ``for`` loop, though each runs in a thread call of its own (which copies the
    context anew): what one step sets, the next sees. Flask's ``stream_with_context`` pushes
    the request context in the first step and pops it in the last; in fresh copies the pushes
    were lost and the pop failed.

    With ``thread_end`` (asyncio only), they also run in one thread, made for this iterator
    (an unentered sync SDK helper's ``__enter__`` still runs in one of anyio's):
    what a step leaves in its thread is there for the next, as in a plain ``for`` loop (Django's
    database connection, with a transaction or a cursor open across a ``yield``). After the
    close, ``thread_end`` runs in that thread (Django closes its connections there), which then
    ends.
    """

    def __init__(
        self,
        iterator: Iterator[Any],
        limiter: anyio.CapacityLimiter | None,
        source: Any,
        thread_end: Callable[[], None] | None = None,
    ) -> None:
        self.iterator = iterator
        self.source = source  # closed too, in the same thread (a sync SDK stream's response)
        self.limiter = limiter
        self.thread_end = thread_end
        self.executor: ThreadPoolExecutor | None = None  # the one thread, with thread_end
        self.lock = threading.Lock()
        self.running = False
        self.close_requested = False
        self.closed = False  # a thread has begun the close (set under the lock)
        self.close_done = False  # the close has run (set under the lock)
        self.on_closed: Callable[[], None] | None = None  # see count_close_in()
        # Made at the first step, from the calling task's (see _thread_context).
        self.context: contextvars.Context | None = None

    def __aiter__(self) -> ThreadedIterator:
        return self

    async def __anext__(self) -> Any:
        limiter = self.limiter if self.limiter is not None else sync_limiter()
        if self.context is None:
            # The calling task's, as anyio's worker threads get: what the view or a
            # middleware set (a request id, a tracing span) is seen by the source.
            self.context = _thread_context()
        if self.thread_end is None:
            item = await anyio.to_thread.run_sync(
                self._next, limiter=limiter, abandon_on_cancel=True
            )
        else:
            if self.close_requested:
                raise StopAsyncIteration  # its thread may be gone: nothing runs there again
            async with limiter:
                # A cancel leaves the call running, as abandon_on_cancel does above.
                item = await self._in_own_thread(self._next)
        if item is _END:
            raise StopAsyncIteration
        return item

    def _in_own_thread(self, func: Callable[[], Any]) -> asyncio.Future[Any]:
        if self.executor is None:
            self.executor = ThreadPoolExecutor(1, thread_name_prefix="sse-llm-source")
        return asyncio.get_running_loop().run_in_executor(self.executor, func)

    def _next(self) -> Any:
        context = self.context
        assert context is not None  # made by __anext__
        with self.lock:
            if self.close_requested:
                return _END
            self.running = True
        try:
            return context.run(next, self.iterator, _END)
        finally:
            with self.lock:
                self.running = False
                close_now = self.close_requested
            if close_now:
                self._close()

    def _close(self) -> None:
        with self.lock:
            if self.closed:
                return
            self.closed = True
        try:
            same = self.source is self.iterator  # a generator is its own iterator
            for obj in (self.iterator,) if same else (self.iterator, self.source):
                close = getattr(obj, "close", None)
                if close is not None:
                    if self.context is None:
                        close()  # never iterated
                    else:
                        self.context.run(close)
        finally:
            if self.thread_end is not None:
                self._end_thread()
            with self.lock:
                self.close_done = True
                on_closed = self.on_closed
            if on_closed is not None:
                on_closed()

    def _end_thread(self) -> None:
        assert self.thread_end is not None
        try:
            self.thread_end()
        except Exception:  # the close itself went well: the stream's ending stands
            logger.warning("ending a sync source's thread failed", exc_info=True)
        finally:
            if self.executor is not None:
                self.executor.shutdown(wait=False)  # its one thread ends once idle

    def count_close_in(self, shutdown: ClosesCounter, timeout: float) -> None:
        """Have ``shutdown``'s drain wait (up to ``timeout`` seconds after its signal) for a
        close under way in a thread, or left to a thread still in ``next()`` (see
        :meth:`aclose`); nothing if the close has run or no thread will run it."""
        with self.lock:
            under_way = self.running or self.closed
            if not (self.close_requested and under_way) or self.close_done:
                return
            if self.on_closed is not None:
                return
            shutdown.hold(self, timeout)
            self.on_closed = functools.partial(shutdown.release, self)

    async def aclose(self) -> None:
        # The flag is set here, not in a worker thread: with every thread of the limiter held
        # by sources blocked in next(), a close would wait for one (and the upstream go on).
        with self.lock:
            self.close_requested = True
            if self.running or self.closed:
                # The thread in next() closes it when that call returns; or a thread has
                # (with thread_end, its own thread is gone: nothing may run there again).
                return
        if self.thread_end is None:
            await anyio.to_thread.run_sync(self._close)
        else:
            # Shielded: a cancel (close_timeout) must not drop the close before it starts.
            await asyncio.shield(self._in_own_thread(self._close))


def _thread_context() -> contextvars.Context:
    """A copy of the calling task's context for a worker thread, with sniffio's "running
    async library" cleared, as anyio clears it for its own worker threads (a source that
    asks, or calls ``anyio.run`` itself, must not be told it runs in the event loop)."""
    context = contextvars.copy_context()
    sniffio = sys.modules.get("sniffio")  # not imported: nobody can have set it
    if sniffio is not None:
        context.run(sniffio.current_async_library_cvar.set, None)
    return context


def close_without_loop(source: Any) -> bool:
    """Close ``source`` here, if that needs no event loop: a sync SDK stream or generator
    (``close()``), an SDK call never awaited (a coroutine's ``close()``). ``False``, and
    nothing done, for a source an event loop must close (``aclose()``, an async ``close()``)
    or one with nothing to close."""
    close = None if hasattr(source, "aclose") else getattr(source, "close", None)
    if close is None or inspect.iscoroutinefunction(close):
        return False
    close()
    return True


def close_refused(source: object) -> None:
    """Close a source whose response was refused before it started (a wrong option, a header
    that cannot be sent, Django under WSGI), so that its upstream request ends now rather than
    at garbage collection: see :func:`close_without_loop`. An async stream needs the event
    loop it was opened on, which the refusal has no way to wait for: it is left to the garbage
    collector. A failure to close is logged: the refusal is what the caller must see."""
    try:
        close_without_loop(source)
    except Exception:
        logger.warning("closing the source of a refused response failed", exc_info=True)


async def aclose_source(iterator: Any, source: Any) -> None:
    """Close the iterator, then the source object if it is a different one.

    An SDK stream (``openai.AsyncStream``) closes its HTTP response in ``close()``/``aclose()``,
    which is what stops the upstream from generating (and billing) more tokens. A coroutine
    that was never awaited (an awaitable source whose stream never started) is closed too.
    """
    if isinstance(iterator, ThreadedIterator):
        # It closes the source too, in its own thread: a generator may still be running
        # there, and closing it from here would fail ("generator already executing").
        objs: tuple[Any, ...] = (iterator,)
    else:
        objs = (iterator, source) if source is not iterator else (iterator,)
    for obj in objs:
        if obj is None or isinstance(obj, str | bytes):
            continue
        if inspect.iscoroutine(obj):
            obj.close()
            continue
        close = getattr(obj, "aclose", None) or getattr(obj, "close", None)
        if close is None:
            continue
        result = close()
        if inspect.isawaitable(result):
            await result
