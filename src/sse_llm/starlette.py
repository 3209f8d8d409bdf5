"""Starlette adapter: a response class, a view decorator and a mountable ASGI app.

Example::

    from sse_llm.starlette import SSEResponse, sse, SSEEndpoint

    async def chat(request):
        return SSEResponse(llm.stream(prompt))      # a response

    @sse(heartbeat=10)
    async def chat(request):                        # a decorated async generator view
        async for token in llm.stream(prompt):
            yield token

    app.mount("/chat", SSEEndpoint(lambda request: llm.stream("hi")))   # a mounted app
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ParamSpec, overload

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from ._formats import WireFormat
from ._pump import CompletionHook, EventStream, ShutdownSignal, Source
from ._resume import ResumeStream, StreamHub

__all__ = ["ResumeResponse", "SSEEndpoint", "SSEResponse", "sse"]

P = ParamSpec("P")


class _StreamingResponse(Response):
    """A Starlette ``Response`` that runs an sse-llm ASGI app, then the ``background`` task."""

    media_type = "text/event-stream"

    def __init__(
        self,
        stream: EventStream | ResumeStream,
        status_code: int,
        background: BackgroundTask | None,
    ) -> None:
        self.stream = stream
        self.status_code = status_code
        self.background = background
        self.body = b""
        # The same list: Starlette's MutableHeaders edits it in place, the stream sends it.
        self.raw_headers = stream.headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.stream(scope, receive, send)  # type: ignore[arg-type]
        if self.background is not None:
            await self.background()


class SSEResponse(_StreamingResponse):
    """A Starlette/FastAPI response streaming ``source`` as server-sent events.

    Takes every argument of :class:`sse_llm.EventStream` (``format``, ``heartbeat`` in
    seconds, ``send_timeout`` in seconds, ``on_complete``, ``shutdown``, ``headers``), plus
    Starlette's ``background`` task, run after the stream ends. Headers set later through
    ``response.headers`` or ``set_cookie`` are sent too. Starlette's ``GZipMiddleware`` leaves
    ``text/event-stream`` uncompressed.
    """

    stream: EventStream

    def __init__(
        self,
        source: Source,
        *,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        format: WireFormat | None = None,
        heartbeat: float | None = 15.0,
        send_timeout: float | None = 30.0,
        on_complete: CompletionHook | None = None,
        shutdown: ShutdownSignal | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        stream = EventStream(
            source,
            format=format,
            heartbeat=heartbeat,
            send_timeout=send_timeout,
            on_complete=on_complete,
            shutdown=shutdown,
            headers=headers,
            status_code=status_code,
        )
        super().__init__(stream, status_code, background)


class ResumeResponse(_StreamingResponse):
    """A Starlette/FastAPI response sending a detached stream of ``hub`` from a position.

    The Response form of :meth:`sse_llm.resume.StreamHub.response` (same arguments: the
    ``last_event_id`` or stream id, ``heartbeat`` and ``send_timeout`` in seconds, ``headers``),
    plus Starlette's ``background`` task. ``200`` with the stream's events after the position,
    or ``204 No Content`` for an unknown, expired or finished-and-fully-read stream (an
    ``EventSource`` then stops reconnecting, WHATWG HTML §9.2.3), or ``200`` with only
    ``retry: 1000`` when the store cannot be read (it reconnects after 1 s); see
    :class:`~sse_llm.resume.ResumeStream`. Headers set later through ``response.headers`` are
    sent too.

    Raises:
        ValueError: a non-positive ``heartbeat`` or ``send_timeout``, or a ``Connection``
            header.
    """

    stream: ResumeStream

    def __init__(
        self,
        hub: StreamHub,
        last_event_id: str,
        *,
        headers: Mapping[str, str] | None = None,
        heartbeat: float | None = 15.0,
        send_timeout: float | None = 30.0,
        background: BackgroundTask | None = None,
    ) -> None:
        stream = hub.response(
            last_event_id, heartbeat=heartbeat, send_timeout=send_timeout, headers=headers
        )
        super().__init__(stream, 200, background)


@overload
def sse(view: Callable[P, AsyncIterator[Any]], /) -> Callable[P, Awaitable[SSEResponse]]: ...


@overload
def sse(
    view: None = None, /, **options: Any
) -> Callable[[Callable[P, AsyncIterator[Any]]], Callable[P, Awaitable[SSEResponse]]]: ...


def sse(view: Any = None, /, **options: Any) -> Any:
    """Decorate an async generator view so that it returns an :class:`SSEResponse`.

    Use bare (``@sse``) or with :class:`SSEResponse` options (``@sse(heartbeat=5)``). The
    view's parameters are kept, so FastAPI dependency injection works on it.

    Raises:
        TypeError: the decorated function is not an async generator function.
    """

    def decorate(func: Callable[..., AsyncIterator[Any]]) -> Callable[..., Awaitable[SSEResponse]]:
        if not inspect.isasyncgenfunction(func):
            raise TypeError(f"@sse needs an async generator function, got {func!r}")

        async def endpoint(*args: Any, **kwargs: Any) -> SSEResponse:
            return SSEResponse(func(*args, **kwargs), **options)

        # Copy the identity but not __wrapped__: frameworks that unwrap would find an async
        # generator function and stream it themselves.
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(endpoint, attr, getattr(func, attr))
        # Resolve string annotations (``from __future__ import annotations``) here, in the
        # view's module: frameworks would resolve them in this module's globals and fail.
        try:
            signature = inspect.signature(func, eval_str=True)
        except NameError:  # a name only imported under TYPE_CHECKING: leave it to the framework
            signature = inspect.signature(func)
        endpoint.__signature__ = signature.replace(  # type: ignore[attr-defined]
            return_annotation=SSEResponse
        )
        return endpoint

    return decorate(view) if view is not None else decorate


class SSEEndpoint:
    """A mountable ASGI app: ``app.mount("/chat", SSEEndpoint(handler))``.

    Args:
        handler: called with the Starlette :class:`~starlette.requests.Request`; returns a
            stream source (sync or async callable).
        methods: accepted HTTP methods; others get ``405``.
        **options: :class:`SSEResponse` options.
    """

    def __init__(
        self,
        handler: Callable[[Request], Source | Awaitable[Source]],
        *,
        methods: tuple[str, ...] = ("GET", "POST"),
        **options: Any,
    ) -> None:
        self.handler = handler
        self.methods = frozenset(m.upper() for m in methods)
        self.options = options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError(f"SSEEndpoint serves HTTP only, not {scope['type']!r}")
        if scope["method"] not in self.methods:
            allow = ", ".join(sorted(self.methods))
            response: Response = PlainTextResponse(
                "Method Not Allowed", status_code=405, headers={"allow": allow}
            )
            await response(scope, receive, send)
            return
        request = Request(scope, receive)
        source = self.handler(request)
        if inspect.isawaitable(source):
            source = await source
        await SSEResponse(source, **self.options)(scope, receive, send)
