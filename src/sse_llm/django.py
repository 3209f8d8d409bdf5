"""Django adapter: stream an LLM answer from an async view, under an ASGI server.

Example::

    from sse_llm.django import SSEStreamingResponse, sse
    from sse_llm.html import MarkdownFormat

    async def chat(request):
        return SSEStreamingResponse(llm.stream(prompt), request=request,
                                    format=MarkdownFormat("answer-1"), on_complete=save)

    @sse(heartbeat=10)
    async def echo(request):
        async for token in llm.stream(request.GET["prompt"]):
            yield token

How it works: the response is a ``StreamingHttpResponse`` over an async iterator that runs
:class:`sse_llm.EventStream` (the same pump as the ASGI adapters) against an in-memory ASGI
channel, so heartbeats, provider chunks, error events and ``on_complete`` behave the same. A
heartbeat is written while the source is silent without cancelling its pending
``__anext__``: a slow upstream keeps its request. When the client goes away, Django (5.0+,
ASGI) cancels the response; the pump then closes the source and calls ``on_complete`` with
reason ``disconnected`` and the partial text, before the cancellation finishes.

Under WSGI a streaming response is buffered whole (Django consumes an async iterator to the
end before sending anything), so this adapter refuses: :class:`sse_llm.UnsupportedServerError`.

Django's ``GZipMiddleware`` has no exception for ``text/event-stream``: it would compress each
event as its own gzip member (async) or hold everything back (sync). The response therefore
carries ``Content-Encoding: identity``, which the middleware leaves alone (it skips responses
that already have a ``Content-Encoding``). CSRF works as usual: an htmx form posts its
``csrfmiddlewaretoken`` field, or send the ``X-CSRFToken`` header.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

from django.http import HttpRequest, StreamingHttpResponse  # type: ignore[import-untyped]
from django.template.loader import get_template  # type: ignore[import-untyped]

from ._exceptions import UnsupportedServerError
from ._formats import WireFormat
from ._pump import CompletionHook, EventStream, ShutdownSignal, Source
from .html import Template

__all__ = ["SSEStreamingResponse", "require_asgi", "sse", "template"]

_WSGI_MESSAGE = (
    "sse-llm cannot stream under WSGI: Django would read the whole answer before sending "
    "a byte. Run the project under an ASGI server (uvicorn project.asgi:application, "
    "daphne, hypercorn) with Django >= 5.0."
)


def require_asgi(request: HttpRequest) -> None:
    """Raise unless ``request`` came through Django's ASGI handler.

    Raises:
        UnsupportedServerError: the request is a WSGI request (``runserver`` without daphne,
            gunicorn sync workers, mod_wsgi ...).
    """
    from django.core.handlers.asgi import ASGIRequest  # type: ignore[import-untyped]

    if not isinstance(request, ASGIRequest):
        raise UnsupportedServerError(_WSGI_MESSAGE)


def template(name: str) -> Template:
    """A Django template usable as a fragment template of :mod:`sse_llm.html` formats.

    The context values the formats pass are :class:`markupsafe.Markup` (escaped text or
    sanitised HTML); Django's autoescaping keeps them as they are (they have ``__html__``).
    """
    loaded: Any = get_template(name)
    return loaded  # type: ignore[no-any-return]


class SSEStreamingResponse(StreamingHttpResponse):  # type: ignore[misc]  # no django stubs
    """A ``StreamingHttpResponse`` streaming ``source`` as server-sent events.

    Args:
        source: anything :class:`sse_llm.EventStream` takes (text, LLM events, provider
            chunks, ready-made events), sync or async.
        request: the view's request; when given, a WSGI request raises at once.
        format, heartbeat, send_timeout, on_complete, shutdown, headers, close_timeout: as
            for :class:`sse_llm.EventStream` (seconds for the times).
        status: the HTTP status.

    Headers: the format's ``content-type`` (``; charset=utf-8``), ``Cache-Control:
    no-cache``, ``X-Accel-Buffering: no`` and ``Content-Encoding: identity`` (keeps
    ``GZipMiddleware`` away).

    Raises:
        UnsupportedServerError: ``request`` is a WSGI request, or the response is iterated
            synchronously (a WSGI server).
    """

    def __init__(
        self,
        source: Source,
        *,
        request: HttpRequest | None = None,
        format: WireFormat | None = None,
        heartbeat: float | None = 15.0,
        send_timeout: float | None = 30.0,
        on_complete: CompletionHook | None = None,
        shutdown: ShutdownSignal | None = None,
        headers: Mapping[str, str] | None = None,
        status: int = 200,
        close_timeout: float = 5.0,
    ) -> None:
        if request is not None:
            require_asgi(request)
        self.stream = EventStream(
            source,
            format=format,
            heartbeat=heartbeat,
            send_timeout=send_timeout,
            on_complete=on_complete,
            shutdown=shutdown,
            headers=headers,
            status_code=status,
            close_timeout=close_timeout,
        )
        super().__init__(_run(self.stream), status=status)
        for name, value in self.stream.headers:
            self[name.decode("latin-1")] = value.decode("latin-1")
        self["Content-Encoding"] = "identity"

    def __iter__(self) -> Iterator[bytes]:
        # Django's fallback would run the whole stream to the end, then send it: refuse.
        raise UnsupportedServerError(_WSGI_MESSAGE)


async def _run(stream: EventStream) -> AsyncIterator[bytes]:
    """Run ``stream`` on an in-memory ASGI channel and yield what it sends."""
    # Bounded, so a client that stops reading still blocks the pump (and send_timeout applies);
    # a few chunks of slack so a send is rarely pending when the pump's watcher plans its
    # next heartbeat.
    chunks: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)
    disconnected = asyncio.Event()
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True  # Django has read the body already
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] != "http.response.body":
            return  # Django sends the status and headers itself
        if disconnected.is_set():
            raise OSError("the client disconnected")
        body = message.get("body", b"")
        if body:
            await chunks.put(body)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
    }
    task = asyncio.create_task(stream(scope, receive, send))
    finished = False
    try:
        while True:
            getter = asyncio.ensure_future(chunks.get())
            try:
                await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not getter.done():
                    getter.cancel()
            if getter.done() and not getter.cancelled():
                yield getter.result()
                continue
            while not chunks.empty():  # the pump is done: what it queued last
                yield chunks.get_nowait()
            finished = True
            task.result()  # re-raise a bug in the pump rather than end quietly
            return
    finally:
        if not finished:
            # Cancelled by Django (client gone) or closed early: let the pump close the source
            # and run on_complete, bounded by its own close timeout.
            disconnected.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), stream.close_timeout + 1.0)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()


def sse(view: Any = None, /, **options: Any) -> Any:
    """Turn an async generator view (or an async view returning a source) into an SSE view.

    Use bare (``@sse``) or with :class:`SSEStreamingResponse` options (``@sse(heartbeat=5)``).
    The view receives the request and URL arguments as usual; the result is an async view.

    Raises:
        TypeError: the decorated function is neither an async generator function nor a
            coroutine function.
        UnsupportedServerError: (when the view is called) the request came through WSGI.
    """

    def decorate(func: Callable[..., Any]) -> Callable[..., Awaitable[SSEStreamingResponse]]:
        is_generator = inspect.isasyncgenfunction(func)
        if not is_generator and not inspect.iscoroutinefunction(func):
            raise TypeError(f"@sse needs an async generator or async function, got {func!r}")

        @functools.wraps(func)
        async def view(request: HttpRequest, *args: Any, **kwargs: Any) -> SSEStreamingResponse:
            require_asgi(request)
            source = func(request, *args, **kwargs)
            if not is_generator:
                source = await source
            return SSEStreamingResponse(source, request=request, **options)

        return view

    return decorate(view) if view is not None else decorate
