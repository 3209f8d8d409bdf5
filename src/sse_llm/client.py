"""A small SSE client side: decode any byte stream (an httpx response) into events.

Example::

    async with httpx.AsyncClient() as client:
        async with client.stream("GET", url) as response:
            async for event in aiter_events(response):
                print(event.event, event.data)

A response (an object with ``status_code`` and ``headers``: httpx, ``requests``) is checked
first, as ``EventSource`` checks it (WHATWG HTML §9.2.3): ``200`` with a ``text/event-stream``
media type is read; ``204 No Content`` (a server telling a client to stop reconnecting, such as
a finished resumable stream) has no events; anything else raises
:class:`~sse_llm.NotEventStreamError` before a byte is read, so that an error page is not
taken for an empty answer. To read a body whatever its headers, pass its bytes
(``aiter_events(response.aiter_bytes())``).

Leaving a stream early (``break``, the ``async with`` exited) tells the server the client is
gone, so it stops the model, over HTTP/1.1. httpx over HTTP/2 (``http2=True``) does not: its
transport (httpcore 1.0) closes the response without resetting the stream (no
``RST_STREAM``), and the server streams the answer to its end. Read streams you may leave over
HTTP/1.1, or close the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Protocol

from ._decoder import SSEDecoder
from ._events import ServerSentEvent
from ._exceptions import NotEventStreamError

__all__ = ["AsyncByteStream", "ByteStream", "NotEventStreamError", "aiter_events", "iter_events"]


class AsyncByteStream(Protocol):
    """What :func:`aiter_events` reads besides an async byte iterable: an ``httpx.Response``
    of ``AsyncClient.stream()`` (its ``aiter_bytes()``)."""

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...


class ByteStream(Protocol):
    """What :func:`iter_events` reads besides a byte iterable: an ``httpx.Response`` of
    ``Client.stream()`` (its ``iter_bytes()``)."""

    def iter_bytes(self) -> Iterator[bytes]: ...


async def aiter_events(
    response: AsyncByteStream | AsyncIterable[bytes],
) -> AsyncIterator[ServerSentEvent]:
    """The events of an SSE byte stream (an ``httpx.Response`` or any async byte iterable).

    Comments (heartbeats) are skipped; use :class:`SSEDecoder` directly to see them.

    Raises:
        NotEventStreamError: a response whose status is neither ``200`` nor ``204``, or whose
            media type is not ``text/event-stream`` (see the module docstring).
    """
    if not _has_events(response):
        return
    chunks = response.aiter_bytes() if hasattr(response, "aiter_bytes") else response
    decoder = SSEDecoder()
    async for chunk in chunks:
        for item in decoder.feed(chunk):
            if type(item) is ServerSentEvent:
                yield item
    decoder.close()


def iter_events(
    response: ByteStream | Iterable[bytes],
) -> Iterator[ServerSentEvent]:
    """Like :func:`aiter_events`, for a sync byte stream: an ``httpx.Response`` of
    ``Client.stream()``, a ``requests`` response (``stream=True``), any byte iterable.

    Raises:
        NotEventStreamError: as :func:`aiter_events`.
    """
    if not _has_events(response):
        return
    chunks = response.iter_bytes() if hasattr(response, "iter_bytes") else response
    decoder = SSEDecoder()
    for chunk in chunks:
        for item in decoder.feed(chunk):
            if type(item) is ServerSentEvent:
                yield item
    decoder.close()


def _has_events(response: object) -> bool:
    """Whether ``response`` may carry events: a byte iterable, or a ``200`` response of
    media type ``text/event-stream``; not a ``204``.

    Raises:
        NotEventStreamError: any other response.
    """
    status = getattr(response, "status_code", None)
    headers = getattr(response, "headers", None)
    if not isinstance(status, int) or headers is None:
        return True  # a byte iterable, not a response
    if status == 204:
        return False
    content_type = str(headers.get("content-type", ""))
    if status != 200 or content_type.partition(";")[0].strip().lower() != "text/event-stream":
        raise NotEventStreamError(status, content_type)
    return True
