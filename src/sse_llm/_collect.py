"""The non-streaming fallback: drain a source to the end and return the whole answer.

Chat apps keep a plain JSON endpoint beside the stream for clients that cannot read one (a
proxy that buffers the response, a network that drops long requests). :func:`collect` reads
any source exactly as a stream would (the same provider detection and normalisation, the same
:class:`~sse_llm.StreamEngine`), sends nothing, and returns the
:class:`~sse_llm.StreamResult`; :func:`result_json` turns it into the endpoint's JSON.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable
from typing import Any, Unpack

import anyio

from ._engine import SAFE_ERROR, StreamEngine
from ._events import encodable
from ._formats import activity_fields, done_fields, source_fields, tool_call_fields
from ._model import ErrorEvent
from ._options import NOT_FOR_COLLECT, CollectOptions, resolve
from ._providers import for_end_user, translate_exception
from ._pump import is_cancellation
from ._result import EndReason, StreamResult
from ._sources import aclose_source, aiter_source, check_source
from ._types import Source

__all__ = ["collect", "result_json"]

logger = logging.getLogger("sse_llm")


async def collect(
    source: Source | Awaitable[Source], **options: Unpack[CollectOptions]
) -> StreamResult:
    """Read ``source`` to its end and return everything it produced, nothing streamed.

    The same normalisation as every stream: provider SDK chunks (OpenAI, Anthropic, Gemini,
    LangChain ...), text, LLM events; tool-call fragments joined; the provider's finish reason
    and usage; a provider error reported in the stream or raised by the source ends the
    answer with reason ``error``. Use it for a JSON endpoint beside the streaming one::

        @app.post("/api/chat/complete")
        async def complete(body: Prompt) -> dict:
            return result_json(await collect(llm.stream(body.prompt)))

    In a sync view (Flask), run it with ``anyio.run(collect, source)``.

    Args:
        source: what a stream takes (see :data:`~sse_llm.Source`), or an awaitable of it
            (awaited here; an error it raises becomes the result's error).
        **options: :class:`~sse_llm.CollectOptions`, those of
            :class:`~sse_llm.StreamOptions` that apply without a wire: ``on_complete``
            (called once, with the same result, whatever the ending), ``keep_text``,
            ``choice``, ``sync_limiter``, ``close_timeout``.

    Returns:
        the :class:`~sse_llm.StreamResult`: ``reason`` is ``completed`` or ``error`` (or
        ``disconnected`` when the caller was cancelled, in which case the cancellation is
        re-raised after the source is closed and ``on_complete`` ran).

    Raises:
        TypeError: a source that cannot be read, or an option that is unknown, of the wrong
            type, or one of ``format``, ``heartbeat``, ``send_timeout``, ``headers``,
            ``shutdown``.
        ValueError: a time that is not positive, a negative ``keep_text`` or ``choice``.
    """
    check_source(source, "collect")
    config = resolve(options, binding="collect", exclude=NOT_FOR_COLLECT)
    engine = StreamEngine(keep_text=config.keep_text, choice=config.choice)
    reason: EndReason = "completed"
    error: BaseException | None = None
    iterator: Any = None
    current: Any = source
    try:
        try:
            if inspect.isawaitable(current):
                current = await current
            iterator = aiter_source(current, config.sync_limiter)
            async for item in iterator:
                engine.feed(item)
                if engine.ended:  # the provider reported an error: nothing more comes
                    break
        except Exception as exc:
            logger.warning("collect: the source failed", exc_info=exc)
            error = exc
        except BaseException as exc:
            if is_cancellation(exc, (anyio.get_cancelled_exc_class(), GeneratorExit)):
                # The caller was cancelled (or its coroutine closed, or a source's own task
                # group cancelled with it).
                reason = "disconnected"
            else:
                # KeyboardInterrupt, SystemExit, a library's own BaseException: the result
                # says the answer was cut by it (not "completed"), then it goes on.
                error = exc
            raise
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(config.close_timeout):
            try:
                await aclose_source(iterator, current)
            except Exception:
                logger.exception("collect: closing the source failed")
        engine.close(reason, error)
        result = engine.result
        hook = config.on_complete
        if hook is not None:
            with anyio.CancelScope(shield=True):
                try:
                    called = hook(result)
                    if inspect.isawaitable(called):
                        await called
                except Exception:
                    logger.exception("collect: on_complete failed")
    return result


def result_json(result: StreamResult) -> dict[str, Any]:
    """A :class:`~sse_llm.StreamResult` as a JSON object, for a non-streaming endpoint.

    The same fields and spellings as the default stream's events (``delta`` text joined,
    ``tool_call`` and ``done`` data, ``error`` data), so one client model reads both::

        {"text": "...", "reasoning": "...",
         "tool_calls": [{"index": 0, "id": "call_1", "name": "f", "arguments": "{...}"}],
         "citations": [{"kind": "url", "url": "https://...", "title": "...", ...}],
         "tool_activity": [{"id": "ws_1", "name": "web_search", "status": "finished", ...}],
         "finish_reason": "stop", "raw_finish_reason": "stop",
         "usage": {"input_tokens": 9, "output_tokens": 12} | null,
         "error": {"message": "...", "code": "..." | null} | null,
         "reason": "completed"}

    The error message is safe to show: the provider's own message for a provider error,
    otherwise a generic one (never an exception's text).

    Raises:
        TypeError: ``result`` is not a :class:`~sse_llm.StreamResult` (a coroutine:
            ``collect()`` not awaited).
    """
    if not isinstance(result, StreamResult):
        hint = " (await collect(...))" if inspect.isawaitable(result) else ""
        raise TypeError(f"result_json needs a StreamResult{hint}, not {type(result).__name__}")
    return {
        "text": result.text,
        "reasoning": result.reasoning,
        "tool_calls": [tool_call_fields(call) for call in result.tool_calls],
        "citations": [source_fields(c) for c in result.citations],
        "tool_activity": [activity_fields(a, with_input=True) for a in result.tool_activity],
        **done_fields(result),
        "error": _error_json(result.error),
        "reason": result.reason,
    }


def _error_json(error: BaseException | ErrorEvent | None) -> dict[str, Any] | None:
    if error is None:
        return None
    if isinstance(error, ErrorEvent):
        return {"message": error.message, "code": error.code}
    provider = translate_exception(error)
    if provider is not None:
        # As the stream sends it: a provider's message may hold half an emoji.
        code = None if provider.code is None else encodable(provider.code)
        return {"message": encodable(for_end_user(provider)), "code": code}
    return {"message": SAFE_ERROR, "code": "internal_error"}
