"""Flask (WSGI) adapter: :func:`sse_response` streams a source as server-sent events.

Example::

    from flask import Flask, request
    from sse_llm.flask import sse_response
    from sse_llm.formats import JSONEventsFormat

    @app.post("/api/chat")
    def chat():
        prompt = request.get_json()["prompt"]      # read the request here, in the view
        stream = openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True
        )
        return sse_response(stream, format=JSONEventsFormat())

How it works: the stream runs in sse-llm's ASGI pump (:class:`sse_llm.EventStream`: the
same formats, provider detection, error events, heartbeats, completion hook as under
uvicorn) on one background event loop thread shared by all Flask streams of the process. A
sync source is iterated in that loop's worker threads, one ``next()`` at a time; an async
source (an async generator, ``FakeLLM.stream``, an ``AsyncOpenAI`` stream) runs on the loop
itself, so an ``AsyncOpenAI`` client kept in a module global keeps working across requests.
The pump hands bytes to the WSGI response through a bounded ``queue.Queue``; the WSGI
thread only waits on that queue and yields what comes.

Heartbeats are sent by the pump after ``heartbeat`` seconds of silence. A WSGI app only
learns that the client left when a write fails: the server then closes the response
iterator (``GeneratorExit``), which ends the pump, closes the source and runs
``on_complete`` with reason ``disconnected``. So the heartbeat interval bounds how long a
silent model keeps running for a client that is gone. A sync source blocked inside
``next()`` is closed once that call returns (a thread cannot be interrupted).

The source runs outside the request context: read ``request`` in the view, not in the
generator (or capture what the generator needs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import logging
import os
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping
from typing import Any

import anyio
import anyio.to_thread
from flask import Response

from ._formats import WireFormat
from ._pump import CompletionHook, EventStream, Source

__all__ = ["SYNC_SOURCE_THREADS", "sse_response"]

logger = logging.getLogger("sse_llm")

#: Worker threads the background loop may use at once for sync sources (each blocked
#: ``next()`` holds one); anyio's default of 40 would queue the 41st concurrent stream.
SYNC_SOURCE_THREADS = 256

_END = object()
_POLL = 0.01  # seconds between tries to hand bytes to a full queue (a slow client)
_GET_TIMEOUT = 1.0  # seconds; the WSGI thread re-checks that the pump is alive this often


class _Loop:
    """The process's background event loop thread, started on first use (and again in a
    forked worker, whose copy of the parent's loop has no thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if self._loop is None or self._pid != os.getpid() or not alive:
                loop = asyncio.new_event_loop()
                started = threading.Event()

                def run() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(started.set)
                    loop.run_forever()

                # A daemon: it must not keep the process alive at exit.
                self._thread = threading.Thread(target=run, name="sse-llm-flask", daemon=True)
                self._thread.start()
                if not started.wait(10):
                    raise RuntimeError("sse-llm's background event loop did not start")
                self._loop = loop
                self._pid = os.getpid()
            return self._loop


_loop = _Loop()


async def _failed(exc: Exception) -> AsyncIterator[Any]:
    raise exc
    yield  # an async generator, never reached


class _WSGIStream:
    """One response: the pump on the background loop, the WSGI iterator in the server thread."""

    def __init__(
        self,
        stream: EventStream,
        pending: Awaitable[Source] | None,
        buffer: int,
    ) -> None:
        self.stream = stream
        self.pending = pending  # an awaitable source, awaited on the loop
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=buffer)
        self.gone = asyncio.Event()  # set, through the loop, when the client went away
        self.future: concurrent.futures.Future[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- on the background loop --------------------------------------------------------------

    async def run(self) -> None:
        limiter = anyio.to_thread.current_default_thread_limiter()
        if limiter.total_tokens < SYNC_SOURCE_THREADS:
            limiter.total_tokens = SYNC_SOURCE_THREADS
        try:
            if self.pending is not None:
                try:
                    self.stream.source = await self.pending
                except Exception as exc:
                    # Refused before streaming (an SDK's HTTP error): the pump reports it.
                    self.stream.source = _failed(exc)
            await self.stream({"type": "http"}, self.receive, self.send)
        finally:
            await self.put(_END, end=True)

    async def receive(self) -> Mapping[str, Any]:
        # The pump's watcher waits here; a WSGI request body was read by the view already.
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.body":
            body = message.get("body", b"")
            if body:
                await self.put(body)

    async def put(self, item: Any, end: bool = False) -> None:
        while True:
            if self.gone.is_set():
                if end:
                    return  # nobody reads any more
                raise OSError("the client went away")
            try:
                self.queue.put_nowait(item)
                return
            except queue.Full:
                # A slow client. Polling, not a blocking put in a thread, keeps the pump
                # cancellable: its send timeout and the disconnect still work.
                await asyncio.sleep(_POLL)

    # -- in the WSGI server's thread -----------------------------------------------------------

    def __iter__(self) -> Iterator[bytes]:
        self.loop = loop = _loop.get()
        self.future = future = asyncio.run_coroutine_threadsafe(self.run(), loop)
        finished = False
        try:
            # An empty first chunk: werkzeug and gunicorn send the headers on the first write,
            # so the client sees the response start before the first token.
            yield b""
            while True:
                try:
                    item = self.queue.get(timeout=_GET_TIMEOUT)
                except queue.Empty:
                    if future.done():
                        break  # the pump died without its end marker: don't wait forever
                    continue
                if item is _END:
                    finished = True
                    break
                yield item
        finally:
            if not finished:
                # GeneratorExit: the server closed the response (a failed write, the client
                # left). End the pump; it closes the source and runs on_complete.
                loop.call_soon_threadsafe(self.gone.set)
            # Wait (bounded) for the source to be closed and on_complete to run before the
            # server reuses this thread: the hook sees the answer before the next request.
            try:
                future.result(timeout=self.stream.close_timeout + 1)
            except concurrent.futures.TimeoutError:
                # A sync source blocked in next(): it is closed when that call returns.
                logger.warning("an sse-llm Flask stream is still closing its source")
            except Exception:
                logger.exception("an sse-llm Flask stream failed")

    def close_unstarted(self) -> None:
        """The server closed the response before reading it (HEAD, an error): close the
        source that was never iterated."""
        if self.future is not None:
            return
        if inspect.iscoroutine(self.pending):
            self.pending.close()
            return
        source = self.stream.source
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            future = asyncio.run_coroutine_threadsafe(aclose(), _loop.get())
            with contextlib.suppress(Exception):
                future.result(timeout=self.stream.close_timeout)
            return
        close = getattr(source, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()


def sse_response(
    source: Source | Awaitable[Source],
    *,
    format: WireFormat | None = None,
    heartbeat: float | None = 15.0,
    send_timeout: float | None = 30.0,
    on_complete: CompletionHook | None = None,
    headers: Mapping[str, str] | None = None,
    status: int = 200,
    close_timeout: float = 5.0,
    buffer: int = 64,
) -> Response:
    """A ``flask.Response`` streaming ``source`` as server-sent events.

    Args:
        source: a sync or async iterable of ``str``, LLM events or provider chunks (what
            :class:`sse_llm.EventStream` takes: an ``openai.Stream`` or ``AsyncStream`` as
            is), or an awaitable of one (``AsyncOpenAI().chat.completions.create(...,
            stream=True)`` without ``await``: it is awaited on the background loop, and an
            error it raises becomes the stream's ``error`` event).
        format: the wire format (default :class:`~sse_llm.EventsFormat`; see
            :mod:`sse_llm.formats`).
        heartbeat: seconds of silence before a keep-alive comment; ``None`` disables. Also
            how soon a gone client is noticed while the model is silent (see module docs).
        send_timeout: seconds the pump waits for a client that does not read before ending
            the stream (reason ``timeout``); ``None`` disables.
        on_complete: called once with the :class:`~sse_llm.StreamResult`, on the background
            loop thread (sync or async).
        headers: extra response headers.
        status: the HTTP status.
        close_timeout: seconds allowed for closing the source.
        buffer: how many chunks may wait for a slow client before the pump waits too.

    Raises:
        ValueError: ``heartbeat`` or ``send_timeout`` is not positive, or ``buffer < 1``.
        TypeError: ``source`` is not an (async) iterable or an awaitable, or is a ``str``.
    """
    if buffer < 1:
        raise ValueError(f"buffer must be at least 1: {buffer}")
    pending: Awaitable[Source] | None = None
    if inspect.isawaitable(source):
        pending, source = source, ()
    elif isinstance(source, str | bytes) or not (
        hasattr(source, "__aiter__") or hasattr(source, "__iter__")
    ):
        # Raised in the view, where the mistake is, rather than as an empty stream.
        raise TypeError(f"sse_response needs an (async) iterable source, not {type(source)}")
    stream = EventStream(
        source,
        format=format,
        heartbeat=heartbeat,
        send_timeout=send_timeout,
        on_complete=on_complete,
        headers=headers,
        status_code=status,
        close_timeout=close_timeout,
    )
    body = _WSGIStream(stream, pending, buffer)
    response = Response(
        iter(body),
        status=status,
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in stream.headers],
    )
    response.call_on_close(body.close_unstarted)
    return response
