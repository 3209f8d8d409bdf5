"""What ``@sse`` accepts, the same in every framework module."""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from collections.abc import Callable
from typing import Any

import anyio.from_thread
import anyio.to_thread

from ._sources import aclose_source, close_without_loop

__all__ = ["call_handler", "check_view", "source_of"]

logger = logging.getLogger("sse_llm")


def check_view(func: Callable[..., Any]) -> bool:
    """Check a view for ``@sse``, at decoration time.

    Returns:
        whether ``func`` is an async generator function (else a coroutine function, whose
        result is the source, or a ready response returned as is).

    Raises:
        TypeError: ``func`` is neither an async generator function nor a coroutine function.
    """
    if inspect.isasyncgenfunction(func):
        return True
    if inspect.iscoroutinefunction(func):
        return False
    inner = inspect.unwrap(func)
    if inner is not func and inspect.isasyncgenfunction(inner):
        raise TypeError(
            f"@sse got {func!r}, a sync function wrapping the async generator view "
            f"{inner.__qualname__}: a decorator under @sse made it sync (Django's require_GET, "
            f"csrf_exempt, login_required … do so): put that decorator above @sse"
        )
    # Django's method_decorator first applies a decorator to a sync dummy of its own.
    method = " (on a class-based view: @sse on the async method, not method_decorator)"
    raise TypeError(
        f"@sse needs an async generator function or an async function (async def), got "
        f"{func!r}: write the view with async def, and pass a blocking (sync) source from it "
        f"as is (it is read in worker threads)"
        + (method if func.__module__ == "django.utils.decorators" else "")
    )


async def source_of(func: Callable[..., Any], is_generator: bool, *args: Any, **kwargs: Any) -> Any:
    """Call the view: an async generator is the source; a coroutine's result is awaited."""
    if is_generator:
        return func(*args, **kwargs)
    return await func(*args, **kwargs)


async def call_handler(handler: Callable[..., Any], *args: Any) -> Any:
    """A handler's result (``SSEEndpoint``, the WebSocket): an async handler is awaited; a
    sync one runs in a worker thread, as Starlette runs a sync endpoint, since it may block (a
    sync SDK call waits for the model's first bytes); an awaitable it returns is awaited."""
    if _runs_on_the_loop(handler):
        result = handler(*args)
    else:
        result = await _in_a_thread(handler, *args)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _in_a_thread(handler: Callable[..., Any], *args: Any) -> Any:
    """``handler(*args)`` in a worker thread. If the caller is cancelled meanwhile (the client
    left, a new prompt, a cancel), the thread runs on to its end and nobody reads what it
    returns: that is closed, or a sync SDK stream's upstream request would stay open,
    generating, until garbage collection."""
    lock = threading.Lock()
    returned: list[Any] = []
    abandoned = False

    def call() -> None:
        result = handler(*args)
        with lock:
            if not abandoned:
                returned.append(result)
                return
        # Cancelled while the handler ran (asyncio delivers a task's cancel at once, even into
        # anyio's wait for the thread). A sync source (an SDK's Stream) is closed here, in
        # this thread, also once the event loop has ended; an async one on the loop.
        try:
            if not close_without_loop(result):
                anyio.from_thread.run(aclose_source, result, result)
        except Exception:
            logger.warning("closing a source its handler returned too late failed", exc_info=True)

    try:
        await anyio.to_thread.run_sync(call)
    except BaseException:
        with lock:
            abandoned = True
            late = returned.pop() if returned else None
        if late is not None:  # the thread had ended: its result is here, unread
            with anyio.CancelScope(shield=True):
                await aclose_source(late, late)
        raise
    return returned[0]


def _runs_on_the_loop(handler: Callable[..., Any]) -> bool:
    """An ``async def`` function, or an async generator function (its call does no work)."""
    while isinstance(handler, functools.partial):
        handler = handler.func
    call = None if inspect.isroutine(handler) else type(handler).__call__  # a callable object
    return any(
        inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f) for f in (handler, call)
    )
