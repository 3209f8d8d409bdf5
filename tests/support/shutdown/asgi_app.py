"""A Starlette app streaming with SSEResponse, wrapped in GracefulShutdown (the one line)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from sse_llm import GracefulShutdown
from sse_llm.starlette import SSEResponse
from tests.support.shutdown.common import hook, tokens


async def stream(request: Request) -> SSEResponse:
    return SSEResponse(tokens(), on_complete=hook)


async def ping(request: Request) -> PlainTextResponse:
    return PlainTextResponse("pong")


#: Without the one line: what a server does by itself.
plain = Starlette(routes=[Route("/stream", stream), Route("/ping", ping)])
app = GracefulShutdown(plain)
