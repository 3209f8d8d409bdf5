"""Flask (WSGI) binding: :class:`SSEResponse` streams a source as server-sent events.

Example::

    from flask import Flask, request
    from sse_llm.flask import SSEResponse
    from sse_llm.formats import TypedJSONFormat

    @app.post("/api/chat")
    def chat():
        prompt = request.get_json()["prompt"]      # read the request here, in the view
        stream = openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True
        )
        return SSEResponse(stream, format=TypedJSONFormat())

How it works: the stream runs in the pump every binding shares (the same formats, provider
detection, error events, heartbeats and completion hook as under uvicorn), on an event loop
that the app keeps in a thread through an anyio blocking portal (one per app and process,
started on first use, also in a forked worker). The WSGI thread takes each chunk from an anyio
memory object stream through the portal: it blocks until the pump sends, with no polling, and
a client that stops reading holds the pump. A sync source is iterated in worker threads (one
``next()`` at a time, bounded by the ``sync_limiter``); an async source (an async generator,
an ``AsyncOpenAI`` stream) runs on the loop itself, so an ``AsyncOpenAI`` client kept in a
module global keeps working across requests.

A WSGI app only learns that the client left when a write fails: the server then closes the
response iterator, which ends the pump, closes the source and runs ``on_complete`` with
reason ``disconnected``. So the heartbeat interval bounds how soon a gone client is noticed
while the model is silent; and as the kernel takes the first writes after the client left,
the hook's text may hold a token or two the client never read. An async source (an
``AsyncOpenAI`` stream) is closed then at once; a sync SDK stream only when its ``next()``
returns, at the model's next chunk (a thread blocked in a socket read cannot be interrupted
from another): where a model may think for long, prefer the async client.

The source runs outside the request and app contexts: read ``request`` in the view, not in
the generator (or capture what the generator needs), or wrap a sync generator in Flask's
``stream_with_context`` (its steps run in one context, so the request context it pushes stays
pushed).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Awaitable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Unpack

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from ._extras import raise_missing_extra

try:
    from flask import Flask, Response, current_app, has_app_context
except ModuleNotFoundError as _missing:
    raise_missing_extra(_missing, __name__, "flask", "flask", "werkzeug")

from ._formats import Units
from ._options import Config, StreamOptions, resolve, response_headers
from ._pump import Pump, abandon_unread
from ._result import EndReason
from ._shutdown import GracefulShutdown, ShutdownOptions
from ._sources import check_source, close_refused
from ._types import Source

__all__ = ["SSEResponse", "graceful_shutdown", "sse_response"]

_logger = logging.getLogger("sse_llm")


class _Loop:
    """An app's event loop thread (a blocking portal), per process."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid = 0
        self.portal: BlockingPortal | None = None
        self.context: contextlib.AbstractContextManager[BlockingPortal] | None = None
        self.shutdown: GracefulShutdown | None = None  # see graceful_shutdown()
        self.pumps: set[Pump] = set()  # the open streams' pumps; used on the loop only

    def get(self) -> BlockingPortal:
        with self.lock:
            if self.portal is None or self.pid != os.getpid():
                # A forked worker inherits the parent's portal object but not its thread.
                self.context = start_blocking_portal("asyncio")
                self.portal = self.context.__enter__()
                self.pid = os.getpid()
                atexit.register(self.stop)
            return self.portal

    def stop(self) -> None:
        with self.lock:
            context, portal = self.context, self.portal
            self.context = self.portal = None
        if context is not None and portal is not None and self.pid == os.getpid():
            # At the interpreter's exit (Ctrl+C on `flask run`) without graceful_shutdown: end
            # the open streams (each sends its shutdown event and runs its hook; a sync source
            # caught in next() is closed only when that returns) rather than wait for their
            # send_timeout, or forever.
            with contextlib.suppress(Exception):
                portal.call(self._end_streams)
            context.__exit__(None, None, None)

    def _end_streams(self) -> None:
        for pump in list(self.pumps):  # a copy: ended pumps leave the set
            pump.end("shutdown")


def _loop_of(app: Flask) -> _Loop:
    # dict.setdefault is atomic: two threads racing here get the same _Loop.
    loop: _Loop = app.extensions.setdefault("sse_llm", _Loop())
    return loop


class _WSGIBody:
    """One response: the pump on the app's loop, the WSGI iterator in the server thread."""

    def __init__(self, source: Source | Awaitable[Source], config: Config, loop: _Loop) -> None:
        self.source = source
        self.config = config
        self.loop = loop
        self.started = False

    def __iter__(self) -> Iterator[bytes]:
        self.started = True
        portal = self.loop.get()
        # (units, more): the last units say they are the last, which saves the server thread
        # one more wait on the loop (per stream, and a thousand at once at a shutdown).
        send, receive = anyio.create_memory_object_stream[tuple[Units, bool]]()
        gone = portal.call(anyio.Event)
        future = portal.start_task_soon(self._run, send, gone)
        finished = False
        try:
            # A comment first: werkzeug and gunicorn send the headers on the first write, and
            # nginx speaking HTTP/2 over TLS with the first body byte, so the client sees the
            # response start before the first token.
            yield self.config.format.keepalive
            more = True
            while more:
                try:
                    units, more = portal.call(receive.receive)
                except anyio.EndOfStream:  # ended with nothing more to send (the client left)
                    break
                yield b"".join(units)
            finished = True
        finally:
            if not finished:
                # GeneratorExit: the server closed the response (a failed write, the client
                # left). End the pump; it closes the source and runs on_complete.
                with contextlib.suppress(RuntimeError):  # the portal stopped (at exit)
                    portal.call(gone.set)
            self._wait(future)
            receive.close()

    def _wait(self, future: Future[None]) -> None:
        # Wait (bounded) for the source to be closed and on_complete to run before the server
        # reuses this thread: the hook sees the answer before the next request.
        try:
            future.result(timeout=self.config.close_timeout + 1)
        except FutureTimeout:
            _logger.warning("an sse-llm Flask stream is still closing its source")
        except Exception:
            _logger.exception("an sse-llm Flask stream failed")

    async def _run(self, send: Any, gone: anyio.Event) -> None:
        config = self.config
        engine = config.engine()

        async def send_units(units: Units, more: bool) -> None:
            if gone.is_set():
                raise OSError("the client went away")
            try:
                await send.send((units, more))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                raise OSError("the client went away") from exc

        async def wait_client() -> EndReason:
            await gone.wait()
            return "disconnected"

        async with send:
            pump = Pump(self.source, engine, config, send_units, shutdown=self.loop.shutdown)
            pumps = self.loop.pumps
            pumps.add(pump)
            try:
                await pump.run(wait_client)
            finally:
                pumps.discard(pump)

    def close_unstarted(self) -> None:
        """The server closed the response before reading it (HEAD, an error): close the
        source that was never iterated and run the hook (reason ``disconnected``), as the
        ASGI bindings do."""
        if not self.started:
            self.started = True
            self.loop.get().call(abandon_unread, self.source, self.config)


class SSEResponse(Response):
    """A ``flask.Response`` streaming ``source`` as server-sent events.

    Args:
        source: what to stream, as for :class:`sse_llm.EventStream`: a sync or async
            iterable (an ``openai.Stream`` or ``AsyncStream`` as is), or an awaitable of one
            (``AsyncOpenAI().chat.completions.create(..., stream=True)`` without ``await``:
            awaited on the app's loop; an error it raises becomes the stream's ``error``
            event). ``on_complete`` runs on that loop's thread.
        status: the HTTP status (Flask's name for it).
        **options: :class:`~sse_llm.StreamOptions`. ``heartbeat`` is also how soon a gone
            client is noticed while the model is silent (see the module docs).

    Must be made inside a request (it finds the app through ``flask.current_app``).

    Raises:
        TypeError: a source that cannot be streamed, an unknown option or a wrong type.
        ValueError: a time that is not positive, a negative ``keep_text`` or ``choice``, or a header
            that cannot be sent (``Connection`` and the like; CR or LF in a name or value; a value
            outside Latin-1).
        RuntimeError: made outside a Flask app context (in a Starlette, FastAPI or Django
            view: each has its own module's ``SSEResponse``).
    """

    def __init__(
        self,
        source: Source | Awaitable[Source],
        *,
        status: int = 200,
        **options: Unpack[StreamOptions],
    ) -> None:
        try:
            check_source(source, "SSEResponse")
            config = resolve(options, binding="SSEResponse")
            if not has_app_context():
                raise RuntimeError(
                    "sse_llm.flask.SSEResponse is made in a Flask view (it needs the app "
                    "context); in Starlette or FastAPI use sse_llm.starlette.SSEResponse or "
                    "sse_llm.fastapi.SSEResponse, in Django sse_llm.django.SSEResponse"
                )
        except BaseException:
            close_refused(source)  # its upstream request must not run on unread
            raise
        body = _WSGIBody(source, config, _loop_of(current_app))
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in response_headers(config.format, config.headers)
        ]
        # Flask-Compress compresses streamed responses of the types it is given (text/event-
        # stream, if an app lists it): the whole stream would arrive at its end. It skips a
        # response that already has a Content-Encoding.
        if all(name != "content-encoding" for name, _ in headers):  # names are lower-case
            headers.append(("Content-Encoding", "identity"))
        super().__init__(iter(body), status=status, headers=headers)
        self.call_on_close(body.close_unstarted)


def sse_response(
    source: Source | Awaitable[Source], *, status: int = 200, **options: Unpack[StreamOptions]
) -> SSEResponse:
    """The function form of :class:`SSEResponse` (its earlier name); same arguments."""
    return SSEResponse(source, status=status, **options)


def graceful_shutdown(app: Flask, **options: Unpack[ShutdownOptions]) -> GracefulShutdown:
    """End every open stream of ``app`` at SIGTERM/SIGINT, before the server acts on it.

    The Flask form of :class:`sse_llm.GracefulShutdown` (same options: ``signals``,
    ``drain_timeout``, ``pause_gc``): call it once where the app is made, which under
    gunicorn is in each worker, after the worker installed its own handlers (not with
    ``--preload``: there the app is made in the arbiter; call it from a ``post_worker_init``
    hook instead). On the signal each stream sends its final ``error`` event (code
    ``shutdown``), closes its source and runs ``on_complete``; then the server's own handler
    runs.

    Returns:
        the :class:`~sse_llm.GracefulShutdown` (also a ``ShutdownSignal``).

    Raises:
        RuntimeError: gevent or eventlet has monkey-patched ``threading`` (``gunicorn -k
            gevent``): their stop signal is handled inside their event loop, where the wait
            for the streams cannot run (gevent stops the worker with
            ``BlockingSwitchOutError``; under eventlet no handler can be installed). Serve
            with threads (``gunicorn -k gthread --threads N``) for clean deploys; streaming
            itself works under gevent.
        TypeError: an unknown option or one of the wrong type.
        ValueError: a ``drain_timeout`` that is not positive and finite.
    """
    green = _green_threads()
    if green is not None:
        raise RuntimeError(
            f"sse_llm.flask.graceful_shutdown does not work under {green}'s monkey-patching "
            f"(gunicorn -k {green}): a stop signal is handled inside {green}'s event loop, "
            "where the wait for the streams cannot run. Serve the app with threads "
            "(gunicorn -k gthread --threads N) to end streams cleanly at a deploy."
        )
    shutdown = GracefulShutdown(**options)
    shutdown.install()
    _loop_of(app).shutdown = shutdown
    return shutdown


def _green_threads() -> str | None:
    """``"gevent"`` or ``"eventlet"`` if it has monkey-patched ``threading`` (looked up in
    ``sys.modules``: neither is imported here)."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("threading"):
        return "gevent"
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    if eventlet_patcher is not None and eventlet_patcher.is_monkey_patched("thread"):
        return "eventlet"
    return None
