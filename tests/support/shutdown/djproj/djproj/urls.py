from django.http import HttpRequest, HttpResponse
from django.urls import path

from sse_llm.django import SSEResponse
from tests.support.shutdown.common import hook, tokens


async def stream(request: HttpRequest) -> SSEResponse:
    return SSEResponse(tokens(), request=request, on_complete=hook)


async def ping(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"pong")


urlpatterns = [path("stream", stream), path("ping", ping)]
