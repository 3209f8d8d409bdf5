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

Reconnecting is the caller's (these functions read one response). Pass your own
:class:`~sse_llm.SSEDecoder`: when the read ends or fails, its ``last_event_id`` is the value
to send as ``Last-Event-ID`` and its ``retry`` the delay the server asked for (milliseconds,
``None`` if it set none); pass the same decoder to the next read. A resumable stream
(:mod:`sse_llm.resume`) sets the id in its first block, before any event, so a read cut while
the model is still thinking can resume too::

    decoder = SSEDecoder()
    last_id = ""
    for attempt in range(5):
        headers = {"Last-Event-ID": last_id} if last_id else {}
        try:
            async with client.stream("GET", url, headers=headers) as response:
                async for event in aiter_events(response, decoder=decoder):
                    print(event.data)
            break  # the stream ended
        except httpx.TransportError:
            last_id = decoder.last_event_id
            await anyio.sleep((decoder.retry or 3000) / 1000)
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any, Protocol

from ._decoder import SSEDecoder
from ._events import ServerSentEvent
from ._exceptions import EventTooLargeError, NotEventStreamError

__all__ = [
    "AsyncByteStream",
    "ByteStream",
    "EventTooLargeError",
    "NotEventStreamError",
    "aiter_events",
    "iter_events",
]

_READ_SIZE = 65_536  # bytes asked of a requests response per read; it returns what has come


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
    *,
    decoder: SSEDecoder | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """The events of an SSE byte stream (an ``httpx.Response`` or any async byte iterable).

    Comments (heartbeats) are skipped; use :class:`SSEDecoder` directly to see them.

    Args:
        response: what to read.
        decoder: the decoder to read with, for its ``last_event_id`` and ``retry`` after the
            read (see the module docstring) or another ``max_event_size`` (16 MiB of
            characters by default). What an earlier response left unfinished is discarded
            when this read starts (its last event ID kept), so one decoder reads response
            after response. Default: a new one.

    Raises:
        NotEventStreamError: a response whose status is neither ``200`` nor ``204``, or whose
            media type is not ``text/event-stream`` (see the module docstring).
        EventTooLargeError: an event outgrew the decoder's ``max_event_size``.
    """
    if not _has_events(response):
        return
    chunks = response.aiter_bytes() if hasattr(response, "aiter_bytes") else response
    if decoder is None:
        decoder = SSEDecoder()
    # A new response: what an earlier read left unfinished is discarded (§9.2.5), its
    # last event ID kept. Here, not in a `finally`: a generator left early is closed later,
    # perhaps while the decoder reads the next response.
    decoder.close()
    async for chunk in chunks:
        for item in decoder.feed(chunk):
            if type(item) is ServerSentEvent:
                yield item
    decoder.close()


def iter_events(
    response: ByteStream | Iterable[bytes],
    *,
    decoder: SSEDecoder | None = None,
) -> Iterator[ServerSentEvent]:
    """Like :func:`aiter_events`, for a sync byte stream: an ``httpx.Response`` of
    ``Client.stream()``, a ``requests`` response (``stream=True``), any byte iterable.

    A ``requests`` response is read with urllib3's ``read1`` (urllib3 2), which returns the
    bytes that have arrived, rather than with ``iter_content``, whose fixed-size reads wait
    for a whole chunk of bytes when the body is not chunked (an event would wait for the next
    ones). Its errors are then urllib3's (``urllib3.exceptions.ProtocolError``), not
    ``requests``'.

    Args:
        response: what to read.
        decoder: as :func:`aiter_events`.

    Raises:
        NotEventStreamError: as :func:`aiter_events`.
        EventTooLargeError: as :func:`aiter_events`.
    """
    if not _has_events(response):
        return
    if decoder is None:
        decoder = SSEDecoder()
    decoder.close()  # as in aiter_events
    for chunk in _sync_chunks(response):
        for item in decoder.feed(chunk):
            if type(item) is ServerSentEvent:
                yield item
    decoder.close()


def _sync_chunks(response: ByteStream | Iterable[bytes]) -> Iterable[bytes]:
    """The reads of a sync response: ``iter_bytes()`` (httpx), ``raw.read1`` (a ``requests``
    response still to be read from urllib3 2), else the object itself."""
    if hasattr(response, "iter_bytes"):
        return response.iter_bytes()
    raw: Any = getattr(response, "raw", None)
    read1 = getattr(raw, "read1", None)
    urllib3 = type(raw).__module__.startswith("urllib3")  # not a test's io.BytesIO
    # Closed: requests has read the body already (stream=False); iterating gives it.
    if urllib3 and read1 is not None and hasattr(response, "iter_content") and not raw.closed:
        return iter(lambda: read1(_READ_SIZE, decode_content=True), b"")
    return response


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
