"""Collecting what ``on_complete`` hooks report, from any thread, with a bounded wait."""

from __future__ import annotations

import threading

from sse_llm import StreamResult


class Results:
    """Collects StreamResults from on_complete (called on the server's thread, or the test's)."""

    def __init__(self) -> None:
        self.items: list[StreamResult] = []
        self._done = threading.Event()

    def __call__(self, result: StreamResult) -> None:
        self.items.append(result)
        self._done.set()

    @property
    def one(self) -> StreamResult:
        assert len(self.items) == 1, self.items
        return self.items[0]

    def wait(self, timeout: float = 10.0) -> StreamResult:
        """The only result, once there is one; fails after ``timeout`` seconds."""
        assert self._done.wait(timeout), f"on_complete not called within {timeout} s"
        return self.one
