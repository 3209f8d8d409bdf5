"""The type aliases every module shares: ASGI callables, stream sources, hooks, signals."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, MutableMapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import Any, Protocol, TypeAlias

from ._result import StreamResult

__all__ = [
    "ASGIApp",
    "CompletionHook",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "ShutdownSignal",
    "Source",
]

#: An ASGI connection scope (ASGI spec, "HTTP Connection Scope").
Scope: TypeAlias = MutableMapping[str, Any]
#: One ASGI event, sent or received (``{"type": "http.response.body", ...}``).
Message: TypeAlias = MutableMapping[str, Any]
#: The ASGI ``receive`` callable.
Receive: TypeAlias = Callable[[], Awaitable[Message]]
#: The ASGI ``send`` callable.
Send: TypeAlias = Callable[[Message], Awaitable[None]]
#: An ASGI 3 application.
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

Source: TypeAlias = (
    AsyncIterable[Any]
    | Iterable[Any]
    | AbstractAsyncContextManager[Any]
    | AbstractContextManager[Any]
)
"""What a stream is built from: an async or sync iterable of ``str`` (answer text),
normalised :data:`~sse_llm.LLMEvent` values, provider stream chunks (an OpenAI
``ChatCompletionChunk``, an Anthropic event, a Gemini JSON chunk ...), or ready-made
:class:`~sse_llm.ServerSentEvent` / :class:`~sse_llm.Comment` / ``dict`` /
``sse_starlette.ServerSentEvent`` events. An SDK stream object (``openai.AsyncStream``) can be
passed as is: closing it is what stops the upstream request. So can an SDK's stream helper,
unentered (``client.messages.stream(...)``, ``client.chat.completions.stream(...)``,
``client.responses.stream(...)``): an (async) context manager whose stream is read; it is
entered when the stream starts and exited when it ends. ``None`` items are skipped (the
``delta.content`` of a chunk that carries none)."""

CompletionHook: TypeAlias = Callable[[StreamResult], object]
"""Called once when a stream ends, whatever the reason, with its
:class:`~sse_llm.StreamResult`; sync or async (an awaitable it returns is awaited; any other
return value is ignored). Both run on the event loop: a sync hook that blocks (a sync database
call, Django's ORM) stalls every other stream of the process while it runs, so make such a
hook async (``await anyio.to_thread.run_sync(save, result)``; with Django, the ORM's async
methods such as ``acreate()``, or ``await sync_to_async(save)(result)``)."""


class ShutdownSignal(Protocol):
    """Anything with ``async wait()`` that returns when the server begins shutting down:
    ``anyio.Event``, ``asyncio.Event``, ``trio.Event``."""

    def wait(self) -> Awaitable[Any]: ...
