"""Sources that stand for what an app streams from: an SDK stream, a failure past Exception."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anyio


def sync_stream(closed: list[str]) -> Iterator[str]:
    """Like a sync SDK stream: one token; closing it once started appends ``"sync"``."""
    try:
        yield "never read"
    finally:
        closed.append("sync")


async def sdk_call() -> list[str]:
    """Like an SDK call a view did not await: closing it sends nothing."""
    return ["never sent"]


class UpstreamStream:
    """Like ``openai.AsyncStream``: endless tokens; its ``aclose()`` is what ends the upstream
    request (counted in :attr:`closed`). Not an async generator: closing it works before the
    first token too."""

    def __init__(self) -> None:
        self.closed = 0

    def __aiter__(self) -> UpstreamStream:
        return self

    async def __anext__(self) -> str:
        return "token"

    async def aclose(self) -> None:
        self.closed += 1


class Abort(BaseException):
    """A library's own BaseException, not a cancellation (pytest's outcomes, gevent's Timeout)."""


async def partial_then_abort(closed: list[bool]) -> AsyncIterator[str]:
    """Yields ``"partial"``, then raises :class:`Abort`; appends to ``closed`` once closed."""
    try:
        yield "partial"
        raise Abort()
    finally:
        closed.append(True)


class Thinker:
    """An answer with a long silence in it: two tokens, then the model thinks for ``think``
    seconds (no event at all: nothing for a producer's writer to store), then one more."""

    def __init__(self, think: float) -> None:
        self.think = think

    async def stream(self) -> AsyncIterator[str]:
        yield "a"
        yield "b"
        await anyio.sleep(self.think)
        yield "c"
