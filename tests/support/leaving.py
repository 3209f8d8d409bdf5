"""A client that leaves a stream mid-answer, and waiting for what the server does then."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import httpx

from sse_llm.client import aiter_events


async def leave_after_deltas(url: str, params: dict[str, str], deltas: int = 3) -> float:
    """Read the stream at ``url`` until ``deltas`` ``delta`` events came, then leave (the
    connection closed); returns when it left (``time.monotonic()``)."""
    received = 0
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", url, params=params) as response,
    ):
        async for event in aiter_events(response):
            received += event.event == "delta"
            if received == deltas:
                break
    assert received == deltas, f"the stream ended after {received} deltas"
    return time.monotonic()


async def wait_for(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Return once ``condition()`` holds; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await anyio.sleep(0.01)
