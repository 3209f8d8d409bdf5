from collections.abc import AsyncIterator

import anyio.lowlevel
from django.http import HttpRequest, HttpResponse
from django.urls import path

from sse_llm.django import SSEResponse
from tests.support.shutdown.common import hook, record, tokens


async def stream(request: HttpRequest) -> SSEResponse:
    return SSEResponse(tokens(), request=request, on_complete=hook)


async def slow_middleware_stream(request: HttpRequest) -> SSEResponse:
    response = SSEResponse(tokens(), request=request, on_complete=hook)
    record("view-returned")  # the test leaves only once the response exists
    return response


async def flood_tokens() -> AsyncIterator[str]:
    """64 KiB tokens as fast as they are taken: a client that stops reading fills every buffer
    between it and Django's send, which then waits."""
    try:
        while True:
            yield "x" * 65536
            await anyio.lowlevel.checkpoint()
    finally:
        record("source-closed")


async def flood(request: HttpRequest) -> SSEResponse:
    return SSEResponse(flood_tokens(), request=request, on_complete=hook)


async def thinking_tokens() -> AsyncIterator[str]:
    """A model that thinks for 3 s before its first token."""
    await anyio.sleep(3)
    yield "answer"


async def thinking(request: HttpRequest) -> SSEResponse:
    return SSEResponse(thinking_tokens(), request=request)


async def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"pong")


urlpatterns = [
    path("stream", stream),
    path("slow-middleware", slow_middleware_stream),
    path("flood", flood),
    path("thinking", thinking),
    path("ping", ping),
]
