"""A client that leaves a stream mid-answer, and waiting for what the server does then."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import httpx

from sse_llm import StreamResult
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


async def assert_upstream_closed_on_leaving(
    replay: Any, tag: str, left_at: float, results: list[StreamResult], whole_text: str
) -> None:
    """The upstream request tagged ``tag`` (on the replay server ``replay``) was closed early,
    within 1 s of the client leaving at ``left_at`` (a sync SDK's worker thread sees the cancel
    when its blocked read returns: one replay delay), and the one hook result says
    ``disconnected`` with part of ``whole_text``."""
    record = await replay.wait_closed_async(5.0, tag=tag)
    assert record.closed_early
    assert record.closed_at is not None and record.closed_at - left_at < 1.0
    await wait_for(lambda: bool(results))
    [result] = results
    assert result.reason == "disconnected"
    assert len(result.text) < len(whole_text)
