"""A StreamHub whose producers start outside GracefulShutdown and whose readers are served
inside it (tests/test_shutdown.py).

``POST /start`` (a job endpoint the middleware does not wrap) starts a producer; ``GET
/read/{stream_id}`` reads it under ``GracefulShutdown``. The stop signal then does not end
the producer (the hub was never started under that middleware), so it must end the reader
itself at once, not wait for a shutdown event the producer will not store before the drain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from sse_llm import GracefulShutdown
from sse_llm.resume import MemoryStore, StreamHub
from sse_llm.starlette import ResumeResponse
from sse_llm.testing import FakeLLM

hub = StreamHub(MemoryStore())
llm = FakeLLM(delay=0.05)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with hub:
        yield


async def start(request: Request) -> JSONResponse:
    return JSONResponse({"stream_id": await hub.start(llm.stream("hi"))})


async def read(request: Request) -> ResumeResponse:
    return ResumeResponse(hub, request.path_params["stream_id"])


async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


readers = GracefulShutdown(Starlette(routes=[Route("/{stream_id}", read)]))
app = Starlette(
    routes=[
        Route("/ping", ping),
        Route("/start", start, methods=["POST"]),
        Mount("/read", readers),
    ],
    lifespan=lifespan,
)
