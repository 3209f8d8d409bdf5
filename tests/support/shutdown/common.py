"""What every shutdown test app streams, and the hook that records how each stream ended.

The hook appends one line per stream to the file named by ``HOOK_LOG`` (``os.write`` with
``O_APPEND``: atomic for short lines, whatever the process or thread): ``hook <reason>
<characters of text> <collector>``, the state of Python's cyclic garbage collector then
(:func:`collector_state`). It sleeps ``HOOK_SLEEP`` seconds first, as a database write would.
"""

from __future__ import annotations

import functools
import gc
import os
import time
from collections.abc import AsyncIterator, Iterator

import anyio

from sse_llm import StreamResult

HOOK_LOG = os.environ.get("HOOK_LOG", os.devnull)
HOOK_SLEEP = float(os.environ.get("HOOK_SLEEP", "0.05"))
TOKEN_DELAY = 0.2
SYNC_TOKEN_DELAY = 0.8


def record(line: str) -> None:
    fd = os.open(HOOK_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


async def tokens() -> AsyncIterator[str]:
    """An answer that never ends by itself: a token every 0.2 s."""
    try:
        for n in range(1_000_000):
            yield f"tok{n} "
            await anyio.sleep(TOKEN_DELAY)
    finally:
        record("source-closed")


def sync_tokens() -> Iterator[str]:
    """A sync source (a sync SDK's stream, read in a worker thread): a token every
    ``SYNC_TOKEN_DELAY`` s, so a stop finds it in the middle of ``next()``."""
    try:
        for n in range(1_000_000):
            yield f"tok{n} "
            time.sleep(SYNC_TOKEN_DELAY)
    finally:
        record("source-closed")


async def hook(result: StreamResult) -> None:
    await anyio.sleep(HOOK_SLEEP)
    record(f"hook {result.reason} {len(result.text)} {collector_state()}")


def collector_state() -> str:
    """``gc-on`` or ``gc-off``, with ``+frozen`` if objects are frozen (``gc.freeze()``)."""
    if gc.isenabled():
        return "gc-on" + ("+frozen" if gc.get_freeze_count() else "")
    return "gc-off" + ("+frozen" if _frozen_while_paused() else "")


@functools.cache
def _frozen_while_paused() -> bool:
    # gc.get_freeze_count() walks every frozen object (200,000 in a worker): once, not per hook.
    return gc.get_freeze_count() > 0
