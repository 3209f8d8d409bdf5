"""FastAPI binding: the Starlette binding, a ``Last-Event-ID`` dependency, and OpenAPI that
documents streams as ``text/event-stream``.

Example::

    from fastapi import FastAPI
    from sse_llm.fastapi import SSEResponse, SSERoute, sse

    app = FastAPI()
    app.router.route_class = SSERoute   # streams documented as text/event-stream in OpenAPI

    @app.get("/chat")
    async def chat(q: str) -> SSEResponse:
        return SSEResponse(llm.stream(q))

    @app.get("/echo")
    @sse(heartbeat=10)
    async def echo(q: str):
        yield q

- :class:`SSEResponse`, :func:`sse`, :class:`SSEEndpoint`, :class:`ResumeResponse`: as in
  :mod:`sse_llm.starlette` (the same classes).
- :data:`LastEventID`: the ``Last-Event-ID`` header as a parameter (resumable streams,
  :mod:`sse_llm.resume`).
- :class:`SSERoute`: FastAPI's route class, plus OpenAPI for streams. Without it FastAPI
  documents a view returning a response as ``application/json``; with it, an ``@sse`` view
  or a view annotated ``-> SSEResponse`` is documented as ``text/event-stream``, for
  ``@sse`` with the event names and data shapes of its format. Without ``SSERoute``, pass
  ``response_class=SSEResponse`` (the media type only) and, for the events,
  ``responses={200: stream_openapi(format)}``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeAlias

from ._extras import raise_missing_extra

try:
    from fastapi import Header
    from fastapi.datastructures import DefaultPlaceholder
    from fastapi.routing import APIRoute
except ModuleNotFoundError as _missing:
    raise_missing_extra(_missing, __name__, "fastapi", "fastapi", "starlette", "pydantic")

from ._openapi import stream_openapi
from .starlette import ResumeResponse, SSEEndpoint, SSEResponse, _StreamResponse, sse

__all__ = [
    "LastEventID",
    "ResumeResponse",
    "SSEEndpoint",
    "SSEResponse",
    "SSERoute",
    "sse",
    "stream_openapi",
]

LastEventID: TypeAlias = Annotated[str | None, Header(alias="Last-Event-ID")]
"""The ``Last-Event-ID`` request header as a view parameter: the ``id`` of the last event a
reconnecting ``EventSource`` received (WHATWG HTML §9.2.4), or ``None`` on a first
connection. Use it with a default: ``last_event_id: LastEventID = None``."""

_UNKNOWN = object()


class SSERoute(APIRoute):
    """FastAPI's ``APIRoute``, documenting sse-llm streams in OpenAPI as ``text/event-stream``.

    Use it for every route of an app or router::

        app = FastAPI()
        app.router.route_class = SSERoute            # before the routes are added
        router = APIRouter(route_class=SSERoute)

    A route streams when its view is decorated with :func:`sse` (its ``format`` option is
    known: every event name and data shape is described, see :func:`stream_openapi`) or is
    annotated to return :class:`SSEResponse` / :class:`ResumeResponse` (the format is chosen
    when the view runs: each event is described as a generic server-sent event). Such a
    route gets ``response_class=SSEResponse`` unless it names one, and the description of
    its success response unless ``responses`` has one for that status. Other routes are left
    exactly as ``APIRoute`` makes them.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        fmt = _stream_format(endpoint, kwargs.get("response_class"))
        if fmt is not _UNKNOWN:
            named = kwargs.get("response_class")
            if named is None or isinstance(named, DefaultPlaceholder):
                kwargs["response_class"] = SSEResponse
            status = kwargs.get("status_code") or 200
            responses = dict(kwargs.get("responses") or {})
            if status not in responses and str(status) not in responses:
                responses[status] = stream_openapi(fmt)
            kwargs["responses"] = responses
        super().__init__(path, endpoint, **kwargs)


def _stream_format(endpoint: Callable[..., Any], response_class: Any) -> Any:
    """The format an endpoint streams in (``None``: chosen per request), or ``_UNKNOWN`` when
    it is not an sse-llm stream."""
    fmt = getattr(endpoint, "sse_llm_format", None)
    if fmt is not None:
        return fmt
    if isinstance(response_class, type) and issubclass(response_class, _StreamResponse):
        return None
    try:
        returns = inspect.signature(endpoint, eval_str=True).return_annotation
    except (NameError, TypeError, ValueError):
        return _UNKNOWN
    if isinstance(returns, type) and issubclass(returns, _StreamResponse):
        return None
    return _UNKNOWN
