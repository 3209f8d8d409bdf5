"""Django binding: stream an LLM answer from an async view, under an ASGI server.

Example::

    from sse_llm.django import SSEResponse, sse

    async def chat(request):
        return SSEResponse(llm.stream(request.POST["prompt"]), request=request,
                           on_complete=save)

    @sse(heartbeat=10)
    async def echo(request):
        async for token in llm.stream(request.GET.get("prompt", "")):
            yield token

How it works: the response is a ``StreamingHttpResponse`` over an async iterator. The pump
(the one every binding shares: heartbeats, provider chunks, error events, ``on_complete``)
runs in a task of its own and hands each chunk over as a rendezvous (the pump's send returns
once Django has the chunk), so a client that stops reading holds the pump (and
``send_timeout`` applies). When the client goes away, Django (5.0+, ASGI) cancels the
response; the pump then closes the source and calls ``on_complete`` with reason
``disconnected`` and the partial text, before the cancellation goes on.

Under WSGI a streaming response is buffered whole (Django consumes an async iterator to the
end before sending anything), so this binding refuses: :class:`sse_llm.UnsupportedServerError`.

Django's ``GZipMiddleware`` has no exception for ``text/event-stream``: it would compress each
event as its own gzip member (async) or hold everything back (sync). The response therefore
carries ``Content-Encoding: identity``, which the middleware leaves alone (it skips responses
that already have a ``Content-Encoding``). CSRF works as usual: an htmx form posts its
``csrfmiddlewaretoken`` field, or send the ``X-CSRFToken`` header.

Fragment templates of :mod:`sse_llm.html` may be Django templates
(``django.template.loader.get_template(name)``): their context values are already safe HTML.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, ParamSpec, Unpack, overload

import anyio

from ._extras import raise_missing_extra

try:
    from django.db import connections  # type: ignore[import-untyped, unused-ignore]
    from django.http import (  # type: ignore[import-untyped, unused-ignore]
        HttpRequest,
        HttpResponseBase,
        StreamingHttpResponse,
    )
except ModuleNotFoundError as _missing:
    raise_missing_extra(_missing, __name__, "django", "django")

from ._exceptions import UnsupportedServerError
from ._formats import Units
from ._options import Config, StreamOptions, resolve, response_headers
from ._pump import Pump, abandon_unread
from ._result import EndReason
from ._sources import check_source, close_refused
from ._types import Source
from ._views import check_view, source_of

P = ParamSpec("P")
_logger = logging.getLogger("sse_llm")

__all__ = ["SSEResponse", "SSEStreamingResponse", "require_asgi", "sse"]

_WSGI_MESSAGE = (
    "sse-llm cannot stream under WSGI: Django would read the whole answer before sending "
    "a byte. Run the project under an ASGI server (uvicorn project.asgi:application, "
    "daphne, hypercorn) with Django >= 5.0; for `manage.py runserver`, add 'daphne' first "
    "in INSTALLED_APPS."
)


def require_asgi(request: HttpRequest) -> None:
    """Raise unless ``request`` came through Django's ASGI handler.

    Raises:
        UnsupportedServerError: the request is a WSGI request (``runserver`` without daphne,
            gunicorn sync workers, mod_wsgi ...).
    """
    from django.core.handlers.asgi import ASGIRequest  # type: ignore[import-untyped, unused-ignore]

    if not isinstance(request, ASGIRequest):
        raise UnsupportedServerError(_WSGI_MESSAGE)


class SSEResponse(StreamingHttpResponse):  # type: ignore[misc, unused-ignore]  # no django stubs
    """A ``StreamingHttpResponse`` streaming ``source`` as server-sent events.

    Args:
        source: what to stream, as for :class:`sse_llm.EventStream` (an awaitable of a
            source too).
        request: the view's request; when given, a WSGI request raises at once, and a
            ``HEAD`` request gets the headers alone (the source closed unread, the hook run
            with reason ``disconnected``).
        status: the HTTP status (Django's name for it).
        **options: :class:`~sse_llm.StreamOptions` (``format``, ``heartbeat`` in seconds,
            ``send_timeout``, ``close_timeout``, ``on_complete``, ``shutdown``, ``headers``,
            ``keep_text``, ``choice``, ``sync_limiter``).

    Headers: the format's ``content-type`` (``; charset=utf-8``), ``Cache-Control:
    no-cache``, ``X-Accel-Buffering: no`` and ``Content-Encoding: identity`` (keeps
    ``GZipMiddleware`` away).

    Raises:
        UnsupportedServerError: ``request`` is a WSGI request, or the response is iterated
            synchronously (a WSGI server).
        TypeError: a source that cannot be streamed, an unknown option or a wrong type.
        ValueError: a time that is not positive, a negative ``keep_text`` or ``choice``, or a header
            that cannot be sent (``Connection`` and the like; CR or LF in a name or value; a value
            outside Latin-1).
    """

    def __init__(
        self,
        source: Source | Awaitable[Source],
        *,
        request: HttpRequest | None = None,
        status: int = 200,
        **options: Unpack[StreamOptions],
    ) -> None:
        try:
            if request is not None:
                require_asgi(request)
            check_source(source, "SSEResponse")
            config = resolve(options, binding="SSEResponse")
        except BaseException:
            close_refused(source)  # its upstream request must not run on unread
            raise
        body = self._sse_body = _Body(source, config)
        # HEAD: the headers alone (RFC 9110 §9.3.2), not the model run to its end for a body
        # the server throws away. Known only from the request.
        body.head = request is not None and request.method == "HEAD"
        super().__init__(body, status=status)
        try:
            view = asyncio.current_task()
        except RuntimeError:  # no event loop here: a sync view (run in a thread)
            view = None
        if view is not None:
            # Django cancels the task running the view and the middleware when the client
            # leaves; before it began to send, the response is dropped unread.
            view.add_done_callback(body.view_ended)
        for name, value in response_headers(config.format, config.headers):
            self[name.decode("latin-1")] = value.decode("latin-1")
        self["Content-Encoding"] = "identity"

    def __iter__(self) -> Iterator[bytes]:
        # Django's fallback would run the whole stream to the end, then send it: refuse.
        self._sse_body.close_unread()
        raise UnsupportedServerError(_WSGI_MESSAGE)


#: The name this class had before every framework module called its response SSEResponse.
SSEStreamingResponse = SSEResponse


class _Body:
    """The async iterator Django reads: chunks from a pump running in a task of its own.

    The hand-off is a rendezvous, as a memory object stream of size 0 would be: the pump's
    send returns once the reader has the units, so a client that stops reading holds the pump
    (and ``send_timeout`` applies). It is made of plain asyncio futures (Django's ASGI handler
    runs only on asyncio): one per event while the reader waits, where an anyio memory stream
    would cost an event, a receiver and two checkpoints.
    """

    __slots__ = ("_ended", "_gone", "_parked", "_reader", "config", "head", "source", "task")

    def __init__(self, source: Source | Awaitable[Source], config: Config) -> None:
        self.source = source
        self.config = config
        self.task: asyncio.Task[None] | None = None
        self._reader: asyncio.Future[Units | None] | None = None  # the reader waits for units
        # Units the pump holds out while the reader is busy, and the future it waits on until
        # they are taken.
        self._parked: tuple[Units, asyncio.Future[None]] | None = None
        self._ended = False  # the pump sent its last units (or failed)
        self._gone: asyncio.Future[None] | None = None  # done once the reader has left
        self.head = False  # a HEAD request's: no body, the source closed unread

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self.task is None and self.head:
            self._ended = True
            self.task = asyncio.get_running_loop().create_task(self._abandon())
            await asyncio.shield(self.task)
            raise StopAsyncIteration
        if self.task is None:
            # The task outlives each __anext__ call, so it cannot belong to a task group here.
            loop = asyncio.get_running_loop()
            self._gone = loop.create_future()
            self.task = loop.create_task(self._run())
            reading = asyncio.current_task()
            if reading is not None:
                # Django cancels its reading task when the client leaves. Inside __anext__ that
                # cancel reaches us; inside Django's own send it does not (Django does not close
                # an async iterator), and the pump would wait for send_timeout.
                reading.add_done_callback(self._reader_left)
            # A comment before anything else: Django sends it as a body message, which makes
            # daphne (and so runserver) write the status line and headers now, and nginx
            # speaking HTTP/2 over TLS send them on (both wait for the first body bytes,
            # which a thinking model may take seconds to give).
            return self.config.format.keepalive
        parked = self._parked
        if parked is not None:  # the pump got here first: take its units and let it go on
            self._parked = None
            units, taken = parked
            if not taken.done():  # else the pump was cancelled a moment ago
                taken.set_result(None)
        elif self._ended:
            raise StopAsyncIteration
        else:
            reader = self._reader = self.task.get_loop().create_future()
            try:
                units = await reader
            except BaseException:
                # Cancelled by Django (the client left) or closed early: let the pump close
                # the source and run on_complete first, bounded by its close timeout.
                self._reader = None
                await self._stop()
                raise
            if units is None:
                raise StopAsyncIteration
        return units[0] if len(units) == 1 else b"".join(units)

    async def aclose(self) -> None:
        await self._stop()

    def close(self) -> None:
        """Django's ``response.close()`` (a ``StreamingHttpResponse`` calls its content's
        ``close``): its ASGI handler calls it once the body is over; a test that leaves the
        body early calls it (closing ``response.streaming_content`` does not reach here:
        Django wraps the body anew at each read). A reader that leaves early ends the stream:
        the source is closed and the hook runs (``disconnected``).
        Called from a worker thread (``sync_to_async``) or the event loop's own."""
        task = self.task
        if task is None or self._ended:
            return
        loop = task.get_loop()
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:
            here = False
        if here:
            self._reader_left(None)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._reader_left, None)

    def view_ended(self, view: asyncio.Task[Any]) -> None:
        """The task that made this response ended. Cancelled with the body never read (the
        client left while a middleware still ran): close the source and run the hook, as for
        any disconnect; nobody else will."""
        if self.task is None and view.cancelled():
            self._ended = True
            self.task = view.get_loop().create_task(self._abandon())

    def close_unread(self) -> None:
        """Refused before it was read (a WSGI server iterates the response): close the source
        now, or a sync SDK stream's upstream request would run on unread."""
        if not self._ended and self.task is None:
            self._ended = True
            close_refused(self.source)

    async def _abandon(self) -> None:
        await abandon_unread(self.source, self.config)

    def _reader_left(self, reading: asyncio.Task[Any] | None) -> None:
        gone = self._gone
        if gone is not None and not gone.done():
            gone.set_result(None)
        parked = self._parked
        if parked is not None and not parked[1].done():
            # Units held out for a reader that has left (the last event of a stream a server
            # cancels whole, reader and pump at once): nobody will take them.
            parked[1].set_exception(OSError("the client disconnected"))

    async def _stop(self) -> None:
        self._reader_left(None)
        task = self.task
        if task is None or task.done():
            return
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.config.close_timeout + 1):
            await asyncio.wait({task})

    async def _send_units(self, units: Units, more: bool) -> None:
        gone = self._gone
        if gone is None or gone.done():
            raise OSError("the client disconnected")
        reader = self._reader
        if reader is not None and not reader.done():
            self._reader = None
            reader.set_result(units)  # the reader was waiting: it has them now
            return
        parked = self._parked = (units, gone.get_loop().create_future())
        try:
            await parked[1]
        finally:
            if self._parked is parked:  # not taken (cancelled): they were never sent
                self._parked = None

    async def _wait_client(self) -> EndReason:
        assert self._gone is not None
        await asyncio.shield(self._gone)  # a cancelled watcher must not mark the reader gone
        return "disconnected"

    async def _run(self) -> None:
        config = self.config
        try:
            # A sync source runs in worker threads, where Django's request_finished never
            # closes the database connections the ORM opens (anyio's shared threads would
            # hold one each, for good). It gets one thread of its own instead, as a WSGI
            # request has: a transaction or a cursor may stay open across a yield, and its
            # connections are closed at its end, with the thread.
            pump = Pump(
                self.source,
                config.engine(),
                config,
                self._send_units,
                thread_end=connections.close_all,
            )
            await pump.run(self._wait_client)
        finally:
            self._ended = True
            reader = self._reader
            if reader is not None and not reader.done():
                self._reader = None
                reader.set_result(None)


@overload
def sse(view: Callable[P, AsyncIterable[Any]], /) -> Callable[P, Awaitable[HttpResponseBase]]: ...


@overload
def sse(view: Callable[P, Awaitable[Any]], /) -> Callable[P, Awaitable[HttpResponseBase]]: ...


@overload
def sse(
    view: None = None, /, **options: Unpack[StreamOptions]
) -> Callable[
    [Callable[P, AsyncIterable[Any] | Awaitable[Any]]], Callable[P, Awaitable[HttpResponseBase]]
]: ...


def sse(view: Any = None, /, **options: Unpack[StreamOptions]) -> Any:
    """Turn an async view into one that streams what it yields or returns.

    Use bare (``@sse``) or with :class:`~sse_llm.StreamOptions` (``@sse(heartbeat=5)``). The
    view is an async generator (what it yields is the stream) or an async function returning
    a source; if it returns a Django ``HttpResponse`` (a 400 for a bad request, say), that is
    sent as is. The view receives the request and URL arguments as usual. On a class-based
    view, decorate the method itself (``async def get(self, request)``), not through
    ``method_decorator``; Django's own decorators (``require_GET``, ``login_required`` …) go
    above ``@sse``.

    Raises:
        TypeError: the view is neither an async generator function nor an async function, or
            an option is unknown or of the wrong type (when decorating).
        ValueError: (when decorating) a time that is not positive, a negative ``keep_text`` or
            ``choice``, or a header that cannot be sent.
        UnsupportedServerError: (when the view is called) the request came through WSGI.
    """

    resolve(options, binding="@sse")  # a misspelt option fails here, not at request time

    def decorate(func: Callable[..., Any]) -> Callable[..., Awaitable[HttpResponseBase]]:
        is_generator = check_view(func)

        @functools.wraps(func)
        async def view(*args: Any, **kwargs: Any) -> HttpResponseBase:
            # A function view gets (request, ...); a class-based view's method (self, request, ...).
            request = next((a for a in args[:2] if isinstance(a, HttpRequest)), None)
            if request is None:
                raise TypeError("an @sse view is called with the request (after self, in a class)")
            require_asgi(request)
            source = await source_of(func, is_generator, *args, **kwargs)
            if isinstance(source, HttpResponseBase):
                return source
            return SSEResponse(source, request=request, **options)

        return view

    return decorate(view) if view is not None else decorate
