"""Errors raised by sse-llm.

Hierarchy::

    SSELLMError                  base class of every error sse-llm raises
    ├── InvalidEventError        you built an event the wire cannot carry (also a ValueError)
    ├── ProviderError            the upstream model provider reported an error inside its stream
    ├── UnsupportedServerError   the host server cannot stream (e.g. Django under WSGI)
    ├── NotEventStreamError      a response read as a stream of events is not one (the client)
    └── EventTooLargeError       an event read grew past its size limit (also a ValueError)

The split follows h11: ``InvalidEventError`` is a local mistake, caught at construction time
before anything is sent; ``ProviderError`` is the remote side's failure and its message is
considered safe to show an end user (providers write it for their API callers).
"""

from __future__ import annotations


class SSELLMError(Exception):
    """Base class of every error raised by sse-llm."""


class InvalidEventError(SSELLMError, ValueError):
    """An event field the SSE wire format cannot carry.

    Raised at construction time, e.g. an ``event`` or ``id`` containing CR or LF (WHATWG HTML
    §9.2.5: a line break would end the field), an ``id`` containing NUL (§9.2.6: the client
    ignores such ids), or a negative ``retry``.
    """


class ProviderError(SSELLMError):
    """The model provider reported an error (in a 200 stream, or as a non-200 response).

    Attributes:
        message: the provider's own message, shown to the end user as is, except for an
            answer whose ``status`` is the server's own configuration's fault (401, 403, 404,
            407: its API key, which OpenAI's 401 text partly echoes, its access, its model name
            or base URL, its proxy's credentials): the stream's ``error`` event then says
            "The model provider refused the server's request (HTTP status 401)." and this
            message is for the operator (the completion hook, the log).
        code: the provider's error code or type when it gives one (``"rate_limit_exceeded"``,
            ``"overloaded_error"``, an HTTP status as a string), else ``None``.
        status: the HTTP status of a non-200 answer, ``None`` for an error inside a stream.
    """

    def __init__(self, message: str, code: str | None = None, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message: str = message
        self.code: str | None = code
        self.status: int | None = status


class UnsupportedServerError(SSELLMError, RuntimeError):
    """The server the app runs under cannot stream a response incrementally."""


class NotEventStreamError(SSELLMError):
    """A response given to :func:`sse_llm.client.aiter_events` / ``iter_events`` is not an
    event stream: its status is not ``200`` (nor ``204``) or its media type is not
    ``text/event-stream``. A browser's ``EventSource`` fails the connection on the same
    (WHATWG HTML §9.2.3), rather than read an error page as an empty stream.

    Attributes:
        status_code: the response's HTTP status.
        content_type: its ``Content-Type`` header as sent (``""`` when it has none).
    """

    def __init__(self, status_code: int, content_type: str) -> None:
        super().__init__(
            f"not an event stream: HTTP {status_code}, "
            f"Content-Type {content_type!r} (expected 200 and text/event-stream)"
        )
        self.status_code = status_code
        self.content_type = content_type


class EventTooLargeError(SSELLMError, ValueError):
    """An event being read outgrew its size limit: ``max_event_size`` of
    :class:`~sse_llm.SSEDecoder`, :func:`sse_llm.client.aiter_events` and
    :func:`sse_llm.sources.sse_json`, or a line of :func:`sse_llm.sources.ndjson`. A body that
    never ends its event (no blank line, no line end) would otherwise grow in memory without
    bound; neither the SSE nor the NDJSON spec sets a limit, so the reader sets one.
    """
