"""Detached, resumable streams: the answer keeps generating when the client goes away, and a
client that comes back with ``Last-Event-ID`` (WHATWG HTML §9.2.4) gets every event it missed,
exactly once, then the live rest.

Opt-in: :class:`~sse_llm.EventStream` still closes the source when its client disconnects.
Example (Starlette/FastAPI; ``ResumeResponse`` lives in :mod:`sse_llm.starlette`)::

    import anyio
    from contextlib import asynccontextmanager
    from starlette.responses import JSONResponse
    from sse_llm.resume import MemoryStore, StreamHub
    from sse_llm.starlette import ResumeResponse

    shutting_down = anyio.Event()       # set it when the server begins shutting down
    hub = StreamHub(MemoryStore(), keep=300, abandon_after=120, shutdown=shutting_down)

    @asynccontextmanager
    async def lifespan(app):
        async with hub:          # producers run here; leaving it shuts them down
            yield

    async def chat(request):
        last_event_id = request.headers.get("last-event-id")
        if last_event_id and hub.recognizes(last_event_id):
            # check here that this user may read this stream (the id is a bearer capability)
            return ResumeResponse(hub, last_event_id)   # a reconnect: the missed events
        stream_id = await hub.start(llm.stream(request.query_params["q"]))
        return ResumeResponse(hub, stream_id)           # a new answer, from its first event

    async def stop(request):                            # a Stop button
        stopped = await hub.cancel(request.path_params["stream_id"])
        return JSONResponse({"stopped": stopped})

- :class:`StreamHub`: starts producers (:meth:`~StreamHub.start`), serves readers
  (:meth:`~StreamHub.response`, an ASGI app: :class:`ResumeStream`), cancels
  (:meth:`~StreamHub.cancel`).
- :class:`MemoryStore`: events in this process (one worker, or sticky sessions).
- :class:`RedisStore`: events in Redis Streams (``pip install 'sse-llm[redis]'``), so that any
  worker can serve a resume or a cancel.
- :class:`ResumeOptions`: what a reader takes (``heartbeat``, ``send_timeout``, ``headers``);
  :class:`ProducerOptions`: what ``StreamHub.start`` takes.
- :class:`StreamStore`: the protocol a custom store implements (its ``read`` returns
  :class:`StoredEvents`).

A stream id, and every event id of the stream, is a bearer capability: whoever has it can read
the answer and cancel it. Authorize in your views, and do not log it.
"""

from __future__ import annotations

from ._options import ProducerOptions, ResumeOptions
from ._resume import MemoryStore, ResumeStream, StoredEvents, StreamHub, StreamStore
from ._resume.redis import RedisStore

__all__ = [
    "MemoryStore",
    "ProducerOptions",
    "RedisStore",
    "ResumeOptions",
    "ResumeStream",
    "StoredEvents",
    "StreamHub",
    "StreamStore",
]
