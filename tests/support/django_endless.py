"""A URL conf with one endless stream, for driving Django's ASGI handler in-process
(``override_settings(ROOT_URLCONF="tests.support.django_endless")``)."""

from __future__ import annotations

from typing import Any

import anyio
from django.http import HttpRequest
from django.urls import path

from sse_llm import StreamResult
from sse_llm.django import SSEResponse


class Endless:
    """Counts the tokens the source made and whether it was closed; keeps the hook's results."""

    def __init__(self) -> None:
        self.produced = 0
        self.closed = False
        self.results: list[StreamResult] = []

    async def tokens(self) -> Any:
        try:
            while True:
                self.produced += 1
                yield f"t{self.produced} "
                await anyio.sleep(0.01)
        finally:
            self.closed = True


#: The stream of the latest request; a test puts a fresh one in before it drives the app.
current = Endless()


async def chat(request: HttpRequest) -> SSEResponse:
    endless = current
    return SSEResponse(endless.tokens(), request=request, on_complete=endless.results.append)


urlpatterns = [path("chat", chat)]
