"""Turning what the user hands us into an async iterator, and closing it again."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any

import anyio
import anyio.to_thread

__all__ = ["aclose_source", "aiter_source"]

_END = object()


def aiter_source(source: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[Any]:
    """An async iterator over ``source``.

    A sync iterable is iterated in a worker thread, one ``next()`` per item, so a blocking
    SDK call never stalls the event loop.

    Raises:
        TypeError: ``source`` is not iterable, or is a ``str``/``bytes`` (almost always a
            mistake: the caller meant ``[text]``).
    """
    if isinstance(source, str | bytes):
        raise TypeError("a stream source must be an iterable of items, not a str or bytes")
    if hasattr(source, "__aiter__"):
        return source.__aiter__()
    if hasattr(source, "__iter__"):
        return _in_thread(iter(source))
    raise TypeError(f"a stream source must be an (async) iterable, not {type(source).__name__}")


async def _in_thread(iterator: Iterator[Any]) -> AsyncIterator[Any]:
    try:
        while True:
            # Not abandoned on cancel: the generator must not be closed while a thread runs it.
            item = await anyio.to_thread.run_sync(next, iterator, _END)
            if item is _END:
                return
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(close)


async def aclose_source(iterator: Any, source: Any) -> None:
    """Close the iterator, then the source object if it is a different one.

    An SDK stream (``openai.AsyncStream``) closes its HTTP response in ``close()``/``aclose()``,
    which is what stops the upstream from generating (and billing) more tokens.
    """
    for obj in (iterator, source) if source is not iterator else (iterator,):
        close = getattr(obj, "aclose", None) or getattr(obj, "close", None)
        if close is None:
            continue
        result = close()
        if inspect.isawaitable(result):
            await result
