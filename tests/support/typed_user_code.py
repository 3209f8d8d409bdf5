"""User code that ``mypy --strict`` must accept, and misuses it must flag.

Checked by tests/test_static_checks.py: each misuse carries a ``# type: ignore[code]``, and
``--strict`` (``warn_unused_ignores``) fails on one that mypy did not need, so a signature
that lets a misuse through fails the test as surely as one that rejects good code.
Never run; only type-checked.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import anyio
from django.http import HttpRequest  # type: ignore[import-untyped]  # (no django-stubs here)
from starlette.requests import Request
from starlette.responses import Response

import sse_llm
import sse_llm.formats
from sse_llm import StreamResult, collect
from sse_llm.django import sse as django_sse
from sse_llm.formats import NamedEventsFormat, TypedJSONFormat
from sse_llm.resume import MemoryStore, StreamHub
from sse_llm.starlette import SSEResponse, sse
from sse_llm.websocket import LLMWebSocket


async def tokens() -> AsyncIterator[str]:
    yield "Hi"


async def save(result: StreamResult) -> bool:  # returns a value: ignored, and allowed
    return result.reason == "completed"


def record(result: StreamResult) -> int:  # a sync hook that returns a row id
    return len(result.text or "")


# -- accepted -------------------------------------------------------------------------------


@sse
async def bare(request: Request) -> AsyncIterator[str]:
    yield request.url.path


@sse(heartbeat=5, on_complete=save)
async def with_options(request: Request, pk: int) -> AsyncIterator[str]:
    yield str(pk)


@sse(format=TypedJSONFormat())
async def returns_a_source(request: Request) -> AsyncIterator[str] | Response:
    return tokens()


@django_sse(heartbeat=5)
async def django_view(request: HttpRequest, pk: int) -> AsyncIterator[str]:
    yield str(pk)


@sse(heartbeat=5)
async def annotated_as_iterable(request: Request) -> AsyncIterable[str]:
    yield "an async generator may say AsyncIterable"


@django_sse
async def django_iterable(request: HttpRequest) -> AsyncIterable[str]:
    yield "bare, AsyncIterable"


async def handlers(request: Request, hub: StreamHub) -> None:
    SSEResponse(tokens(), on_complete=record)
    SSEResponse(tokens(), on_complete=save, headers={"x-trace": "1"})
    await collect(tokens(), on_complete=save, keep_text=100)
    await hub.start(tokens(), format=TypedJSONFormat(), on_complete=record)
    LLMWebSocket(lambda message: tokens(), heartbeat=5, shutdown=anyio.Event())
    await with_options(request, 3)
    await django_view(HttpRequest(), pk=3)


# -- flagged ----------------------------------------------------------------------------------


def sync_view(request: Request) -> str:
    return "a sync view: @sse refuses it"


def django_sync_view(request: HttpRequest) -> str:
    return "a sync view: @sse refuses it"


bad_sync = sse(heartbeat=10)(sync_view)  # type: ignore[arg-type]
bad_django_sync = django_sse(heartbeat=10)(django_sync_view)  # type: ignore[arg-type]


async def misuses(request: Request, hub: StreamHub) -> None:
    await with_options(request, "3")  # type: ignore[arg-type]
    await django_view(HttpRequest(), pk="3")  # type: ignore[arg-type]
    await collect(tokens(), heartbeat=5)  # type: ignore[call-arg]
    await collect(tokens(), format=TypedJSONFormat())  # type: ignore[call-arg]
    await hub.start(tokens(), heartbeat=5)  # type: ignore[call-arg]
    LLMWebSocket(lambda message: tokens(), headers={"x": "1"})  # type: ignore[call-arg]
    LLMWebSocket(lambda message: tokens(), format=TypedJSONFormat())  # type: ignore[call-arg]
    SSEResponse(tokens(), heartbaet=5)  # type: ignore[call-arg]


def unused(*args: Any) -> None:
    """Keeps the names above referenced."""
    # The deprecated names still type as what they name; a misspelt name is an error, not Any.
    unused(sse_llm.colect)  # type: ignore[attr-defined]
    unused(sse_llm.formats.TypedJsonFormat)  # type: ignore[attr-defined]
    named: NamedEventsFormat = sse_llm.EventsFormat()
    typed: TypedJSONFormat = sse_llm.formats.JSONEventsFormat()
    unused(named, typed)
    MemoryStore()
