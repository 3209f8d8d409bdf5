"""Starlette binding: a response class, a view decorator and an ASGI endpoint.

Example::

    from sse_llm.starlette import SSEResponse, SSEEndpoint, sse

    async def chat(request):
        return SSEResponse(llm.stream(request.query_params.get("q", "")))   # a response

    @sse(heartbeat=10)
    async def echo(request):                       # a decorated async generator view
        async for token in llm.stream("hi"):
            yield token

    app = Starlette(routes=[
        Route("/chat", chat),
        Route("/echo", echo),
        Route("/stream", SSEEndpoint(lambda request: llm.stream("hi"))),  # an ASGI endpoint
    ])
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any, ParamSpec, Unpack, overload

from ._extras import raise_missing_extra

try:
    from starlette.background import BackgroundTask
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
except ModuleNotFoundError as _missing:
    raise_missing_extra(_missing, __name__, "starlette", "starlette")

from ._asgi import EventStream
from ._options import ResumeOptions, StreamOptions, resolve
from ._resume import ResumeStream, StreamHub
from ._types import ASGIApp, Receive, Scope, Send, Source
from ._views import call_handler, check_view, source_of

__all__ = ["ResumeResponse", "SSEEndpoint", "SSEResponse", "sse"]

P = ParamSpec("P")


class _StreamResponse(Response):
    """A Starlette ``Response`` that runs an sse-llm ASGI app, then the ``background`` task."""

    media_type = "text/event-stream"

    def __init__(
        self,
        app: ASGIApp,
        headers: list[tuple[bytes, bytes]],
        status_code: int,
        background: BackgroundTask | None,
    ) -> None:
        self._app = app
        self.status_code = status_code
        self.background = background
        self.body = b""
        # The same list: Starlette's MutableHeaders edits it in place, the app sends it.
        self.raw_headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
        if self.background is not None:
            await self.background()


class _ResponseStream(EventStream):
    """The ASGI app of an :class:`SSEResponse`, whose errors name ``SSEResponse``."""

    _binding = "SSEResponse"


_NO_SOURCE: Any = object()


class SSEResponse(_StreamResponse):
    """A Starlette/FastAPI response streaming ``source`` as server-sent events.

    Args:
        source: what to stream, as for :class:`sse_llm.EventStream` (an awaitable of a
            source too).
        content: the source under the name FastAPI gives it when it makes the response
            itself: a generator view with ``response_class=SSEResponse`` (FastAPI calls
            ``SSEResponse(content=<the generator>, status_code=..., background=...)``).
            Give ``source`` or ``content``, not both.
        status_code: the HTTP status.
        background: Starlette's background task, run after the stream ends.
        **options: :class:`~sse_llm.StreamOptions` (``format``, ``heartbeat`` in seconds,
            ``send_timeout``, ``close_timeout``, ``on_complete``, ``shutdown``, ``headers``,
            ``keep_text``, ``choice``, ``sync_limiter``).

    Headers set later through ``response.headers`` or ``set_cookie`` are sent too.
    Starlette's ``GZipMiddleware`` leaves ``text/event-stream`` uncompressed.

    Raises:
        TypeError: no source, or both ``source`` and ``content``; a source that cannot be
            streamed, an unknown option or a wrong type.
        ValueError: a time that is not positive, a negative ``keep_text`` or ``choice``, or a header
            that cannot be sent (``Connection`` and the like; CR or LF in a name or value; a value
            outside Latin-1).
    """

    def __init__(
        self,
        # Optional only for FastAPI's content= (one signature, not overloads: a misspelt
        # option then gets mypy's "did you mean", not a list of overloads).
        source: Source | Awaitable[Source] = _NO_SOURCE,
        *,
        content: Source | Awaitable[Source] = _NO_SOURCE,
        status_code: int = 200,
        background: BackgroundTask | None = None,
        **options: Unpack[StreamOptions],
    ) -> None:
        if (source is _NO_SOURCE) == (content is _NO_SOURCE):
            raise TypeError(
                "SSEResponse takes the source to stream once: SSEResponse(source) "
                "(content=source is the name FastAPI gives it)"
            )
        if source is _NO_SOURCE:
            source = content
        self.stream: EventStream = _ResponseStream(source, status_code=status_code, **options)
        super().__init__(self.stream, self.stream.headers, status_code, background)


class ResumeResponse(_StreamResponse):
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
        TypeError: an option a reader does not take (``format``), an unknown one or a wrong
            type.
        ValueError: a non-positive ``heartbeat`` or ``send_timeout``, or a header that cannot be
            sent (``Connection`` and the like; CR or LF in a name or value; a value outside
            Latin-1).
    """

    def __init__(
        self,
        hub: StreamHub,
        last_event_id: str,
        *,
        background: BackgroundTask | None = None,
        **options: Unpack[ResumeOptions],
    ) -> None:
        self.stream: ResumeStream = hub.response(last_event_id, **options)
        super().__init__(self.stream, self.stream.headers, 200, background)


async def _read_body_first(request: Request) -> None:
    """Read a request's body now, if it has one (Starlette keeps it for ``request.json()``,
    ``form()``, ``stream()``). A generator view runs once the response has started, while the
    pump waits on ``receive`` for the client to leave: a body read then would race the pump
    for the body messages (a request that hangs, or an empty body)."""
    headers = request.headers
    if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
        await request.body()


@overload
def sse(view: Callable[P, AsyncIterable[Any]], /) -> Callable[P, Awaitable[Response]]: ...


@overload
def sse(view: Callable[P, Awaitable[Any]], /) -> Callable[P, Awaitable[Response]]: ...


@overload
def sse(
    view: None = None, /, **options: Unpack[StreamOptions]
) -> Callable[
    [Callable[P, AsyncIterable[Any] | Awaitable[Any]]], Callable[P, Awaitable[Response]]
]: ...


def sse(view: Any = None, /, **options: Unpack[StreamOptions]) -> Any:
    """Turn an async view into one that streams what it yields or returns.

    Use bare (``@sse``) or with :class:`~sse_llm.StreamOptions` (``@sse(heartbeat=5)``). The
    view is an async generator (what it yields is the stream) or an async function returning
    a source; if it returns a Starlette ``Response`` (a 400 for a bad request, say), that is
    sent as is. The view's parameters are kept, so FastAPI dependency injection works on it.

    Raises:
        TypeError: the view is neither an async generator function nor an async function, or
            an option is unknown or of the wrong type (when decorating).
        ValueError: (when decorating) a time that is not positive, a negative ``keep_text`` or
            ``choice``, or a header that cannot be sent.
    """

    config = resolve(options, binding="@sse")  # a misspelt option fails here, not per request

    def decorate(func: Callable[..., Any]) -> Callable[..., Awaitable[Response]]:
        is_generator = check_view(func)

        async def endpoint(*args: Any, **kwargs: Any) -> Response:
            if is_generator:
                for value in (*args, *kwargs.values()):
                    if isinstance(value, Request):
                        await _read_body_first(value)
                        break
            source = await source_of(func, is_generator, *args, **kwargs)
            if isinstance(source, Response):
                return source
            return SSEResponse(source, **options)

        # Copy the identity but not __wrapped__: frameworks that unwrap would find an async
        # generator function and stream it themselves.
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(endpoint, attr, getattr(func, attr))
        # What the stream is, for documentation (sse_llm.fastapi.SSERoute: OpenAPI).
        endpoint.sse_llm_format = config.format  # type: ignore[attr-defined]
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
    """An ASGI endpoint for a route: ``Route("/chat", SSEEndpoint(handler))``.

    In an app already made (FastAPI too):
    ``app.routes.append(Route("/chat", SSEEndpoint(handler)))`` (``app.add_route`` works as
    well, but type checkers flag it: Starlette types it for a request handler, not an ASGI
    app). Prefer a route to ``app.mount("/chat", ...)``: a mount only matches ``/chat/...``,
    so ``/chat?q=hi`` gets a ``307`` redirect to ``/chat/?q=hi`` first (and a POST body is
    lost by clients that do not follow a 307 with it).

    Args:
        handler: called with the Starlette :class:`~starlette.requests.Request`; sync (run in
            a worker thread, as Starlette runs a sync endpoint) or async. Returns a source, or
            a Starlette ``Response`` sent as is (a 400 for a bad parameter). It may also raise
            Starlette's ``HTTPException`` (sent as a plain-text response with that status).
        methods: accepted HTTP methods (default ``("GET", "POST")``); others get ``405``.
            With ``GET``, ``HEAD`` is accepted too, as on Starlette's own routes: the handler
            runs and the response has the headers alone (the source is closed unread).
        **options: :class:`~sse_llm.StreamOptions`.

    A request that lacks a parameter the handler reads with ``[]`` (``request.query_params["q"]``,
    a form field: Starlette raises ``KeyError``) gets ``400 missing request parameter 'q'``
    instead of a 500; any other ``KeyError`` is the handler's own and propagates.

    Raises:
        TypeError: a ``handler`` that is not callable, ``methods`` that is not a collection of
            method names (a bare ``"GET"``), an unknown option or one of the wrong type.
        ValueError: a time that is not positive, a negative ``keep_text`` or ``choice``, or a header
            that cannot be sent (``Connection`` and the like; CR or LF in a name or value; a value
            outside Latin-1).
    """

    def __init__(
        self,
        handler: Callable[[Request], Source | Response | Awaitable[Source | Response]],
        *,
        methods: tuple[str, ...] = ("GET", "POST"),
        **options: Unpack[StreamOptions],
    ) -> None:
        if not callable(handler):
            raise TypeError(
                "SSEEndpoint's handler is called with the request and returns a source; "
                f"got {type(handler).__name__}"
            )
        if isinstance(methods, str) or not all(isinstance(m, str) for m in methods):
            raise TypeError(
                f"methods is a tuple of method names, such as ('GET',), not {methods!r}"
            )
        resolve(options, binding="SSEEndpoint")
        self.handler = handler
        accepted = {m.upper() for m in methods}
        if "GET" in accepted:
            accepted.add("HEAD")  # as Starlette's Route does for an endpoint function
        self.methods: frozenset[str] = frozenset(accepted)
        self.options = options

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            raise RuntimeError(f"SSEEndpoint serves HTTP only, not {scope['type']!r}")
        if scope["method"] not in self.methods:
            allow = ", ".join(sorted(self.methods))
            response: Response = PlainTextResponse(
                "Method Not Allowed", status_code=405, headers={"allow": allow}
            )
        else:
            response = await self._respond(Request(scope, receive))
        await response(scope, receive, send)

    async def _respond(self, request: Request) -> Response:
        await _read_body_first(request)
        try:
            source = await call_handler(self.handler, request)
        except HTTPException as exc:
            return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)
        except KeyError as exc:
            if not _missing_parameter(exc):
                raise  # a bug in the handler, not a bad request
            return PlainTextResponse(f"missing request parameter {exc.args[0]!r}", status_code=400)
        if isinstance(source, Response):
            return source
        return SSEResponse(source, **self.options)


def _missing_parameter(exc: KeyError) -> bool:
    """Whether ``exc`` came from looking up a request's query parameter or form field (a
    Starlette ``ImmutableMultiDict``), rather than from the handler's own data."""
    tb = exc.__traceback__
    if tb is None or len(exc.args) != 1 or not isinstance(exc.args[0], str):
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return bool(tb.tb_frame.f_globals.get("__name__") == "starlette.datastructures")
