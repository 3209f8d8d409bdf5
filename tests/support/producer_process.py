"""A hub producing one slow stream on Redis in a process of its own, for a test to kill.

Run as ``python -m tests.support.producer_process <redis url> <key prefix>``: prints the stream
id on a line of its own, then keeps producing; it exits by itself after ``LIFETIME`` seconds.
"""

from __future__ import annotations

import sys

import anyio
import redis.asyncio

from sse_llm.resume import RedisStore, StreamHub
from sse_llm.testing import FakeLLM

#: A bound on the process's life, should the test fail to kill it.
LIFETIME = 60.0
#: 400 tokens at 0.05 s: 20 s of answer, far more than a test waits.
ANSWER = " ".join(f"word{n}" for n in range(200))


async def main(url: str, prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(url)
    async with StreamHub(RedisStore(client, prefix=prefix)) as hub:
        stream_id = await hub.start(FakeLLM(ANSWER, delay=0.05).stream())
        print(stream_id, flush=True)
        await anyio.sleep(LIFETIME)
        await hub.cancel(stream_id)
    await client.aclose()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2])
