"""A Starlette app whose model thinks before its first token: ``SSEResponse`` in a route,
and a bare ``EventStream`` as the ASGI app of a mount."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from sse_llm import EventStream, TextFormat
from sse_llm.starlette import SSEResponse

THINKS = 2.0  # seconds before the first token


async def thinking() -> AsyncIterator[str]:
    await anyio.sleep(THINKS)
    yield "answer"


async def routed(request: Request) -> SSEResponse:
    return SSEResponse(thinking())


async def bare(scope: Scope, receive: Receive, send: Send) -> None:
    await EventStream(thinking(), format=TextFormat())(scope, receive, send)


app = Starlette(routes=[Route("/routed", routed), Mount("/bare", bare)])
