import asyncio
from collections.abc import Awaitable, Callable

from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.decorators import async_only_middleware

SLOW_PATH = "/slow-middleware"


@async_only_middleware
def slow_response(
    get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]],
) -> Callable[[HttpRequest], Awaitable[HttpResponseBase]]:
    """On SLOW_PATH, a second's work after the view returned (an async middleware's awaited
    work, a session save): a client may leave before Django sends anything."""

    async def middleware(request: HttpRequest) -> HttpResponseBase:
        response = await get_response(request)
        if request.path == SLOW_PATH:
            await asyncio.sleep(1.0)
        return response

    return middleware
