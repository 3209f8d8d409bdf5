"""A small SSE client side: decode any byte stream (an httpx response) into events.

Example::

    async with httpx.AsyncClient() as client:
        async with client.stream("GET", url) as response:
            async for event in aiter_events(response):
                print(event.event, event.data)
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Protocol

from ._decoder import SSEDecoder
from ._events import ServerSentEvent

__all__ = ["AsyncByteStream", "ByteStream", "aiter_events", "iter_events"]


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
    """
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
    """Like :func:`aiter_events`, for a sync byte stream (``httpx.Client``, ``requests``)."""
    chunks = response.iter_bytes() if hasattr(response, "iter_bytes") else response
    decoder = SSEDecoder()
    for chunk in chunks:
        for item in decoder.feed(chunk):
            if type(item) is ServerSentEvent:
                yield item
    decoder.close()
