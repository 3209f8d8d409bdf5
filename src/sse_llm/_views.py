"""What ``@sse`` accepts, the same in every framework module."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["check_view", "source_of"]


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
    raise TypeError(f"@sse needs an async generator function or an async function, got {func!r}")


async def source_of(func: Callable[..., Any], is_generator: bool, *args: Any, **kwargs: Any) -> Any:
    """Call the view: an async generator is the source; a coroutine's result is awaited."""
    if is_generator:
        return func(*args, **kwargs)
    return await func(*args, **kwargs)
