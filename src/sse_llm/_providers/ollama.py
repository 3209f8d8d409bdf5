"""Ollama native streams: ``/api/chat`` and ``/api/generate`` NDJSON lines.

Read the body with :func:`sse_llm.sources.ndjson`; the ``ollama`` Python package's
``ChatResponse`` / ``GenerateResponse`` objects work too. (Ollama's OpenAI-compatible
``/v1/chat/completions`` endpoint is handled as Chat Completions.) Source of the rules: Ollama
API docs (``docs/api.md``, "Generate a chat completion", "Generate a completion"); shapes as
recorded in the test fixtures' FORMATS.md.

Mapped:

- ``message.content`` (chat) or ``response`` (generate) -> :class:`TextDelta`;
- ``message.thinking`` (chat) or ``thinking`` (generate), sent by thinking models with
  ``think: true`` -> :class:`ReasoningDelta`;
- ``message.tool_calls`` arrive whole -> :class:`ToolCall`, numbered in arrival order, the
  ``function.arguments`` object written as compact JSON, id from ``id`` when present;
- the last object (``done: true``) -> :class:`Finish` from ``done_reason`` (``stop`` ->
  ``stop``, or ``tool_calls`` when the answer made tool calls; ``length`` -> ``length``;
  ``load`` / ``unload`` -> ``other``) and, at the end, :class:`Usage` from
  ``prompt_eval_count`` (input) and ``eval_count`` (output) (durations, in nanoseconds, stay
  in ``Usage.raw``);
- an ``{"error": "..."}`` line -> :class:`ErrorEvent`.

Not reported by Ollama: citations, provider-run tools, reasoning-token or prompt-cache counts
(a thinking model's tokens are inside ``eval_count``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._exceptions import ProviderError
from .._model import (
    ErrorEvent,
    Finish,
    FinishReason,
    LLMEvent,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    Usage,
)
from ._common import as_mapping, error_fields, sdk_class, status_error

_FINISH: dict[str, FinishReason] = {"stop": "stop", "length": "length"}


def matches(item: Any) -> bool:
    """An Ollama chat/generate stream object: ``done`` plus ``message`` or ``response``."""
    if isinstance(item, Mapping):
        return "done" in item and ("message" in item or "response" in item)
    return type(item).__module__.startswith("ollama") and type(item).__name__ in (
        "ChatResponse",
        "GenerateResponse",
    )


def translate(exc: BaseException) -> ProviderError | None:
    """The provider's message from the ``ollama`` SDK's ``ResponseError``.

    The SDK raises it for an ``{"error": ...}`` line inside the stream (``status_code`` -1,
    ``error`` the line's message) and for a non-200 answer (``status_code`` the HTTP status,
    ``error`` the JSON body's ``error``, else the whole body, which may be a proxy's HTML page:
    so the message is taken from the answer's body only when that body is JSON). Source: the
    SDK's ``_client.py`` (``_stream``, ``_request_raw``).
    """
    cls = sdk_class(exc, "ollama")
    if cls is None or cls.__name__ != "ResponseError":
        return None
    status = getattr(exc, "status_code", None)
    if status == -1:
        message, code = error_fields({"error": getattr(exc, "error", None)})
        return ProviderError(message or "The model provider reported an error.", code)
    if not isinstance(status, int):
        return None
    # The SDK raises it `from None` inside its handler of httpx's HTTPStatusError, which
    # stays the context and holds the answer.
    answer = getattr(exc.__context__, "response", None)
    try:
        payload: Any = json.loads(answer.text) if answer is not None else None
    except (ValueError, AttributeError):  # not JSON, or not an httpx response
        payload = None
    return status_error(status, payload if isinstance(payload, Mapping) else None)


class Normalizer:
    """Normalises Ollama NDJSON objects (see the module docstring)."""

    def __init__(self) -> None:
        self._calls = 0
        self._usage: Mapping[str, Any] | None = None

    def feed(self, item: Any) -> list[LLMEvent]:
        obj = as_mapping(item)
        if obj.get("error"):
            message, code = error_fields(obj)
            return [ErrorEvent(message or "The model provider reported an error.", code)]
        out: list[LLMEvent] = []
        message = obj.get("message")
        if isinstance(message, Mapping):
            thinking, content = message.get("thinking"), message.get("content")
            calls = message.get("tool_calls")
        else:
            thinking, content, calls = obj.get("thinking"), obj.get("response"), None
        if isinstance(thinking, str) and thinking:
            out.append(ReasoningDelta(thinking))
        if isinstance(content, str) and content:
            out.append(TextDelta(content))
        for call in calls or ():
            out.append(self._call(call))
        if obj.get("done"):
            raw = obj.get("done_reason")
            if isinstance(raw, str) and raw:
                reason = _FINISH.get(raw, "other")
                if reason == "stop" and self._calls:
                    reason = "tool_calls"
                out.append(Finish(reason, raw))
            self._usage = {k: v for k, v in obj.items() if k.endswith(("_count", "_duration"))}
        return out

    def close(self) -> list[LLMEvent]:
        if not self._usage:
            return []
        raw = self._usage
        self._usage = None
        return [
            Usage(
                input_tokens=raw.get("prompt_eval_count"),
                output_tokens=raw.get("eval_count"),
                raw=raw,
            )
        ]

    def _call(self, call: Any) -> ToolCall:
        index = self._calls
        self._calls += 1
        call = call if isinstance(call, Mapping) else {}
        function = call.get("function")
        function = function if isinstance(function, Mapping) else {}
        arguments = function.get("arguments")
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments or {}, ensure_ascii=False, separators=(",", ":"))
        return ToolCall(index, call.get("id") or "", function.get("name") or "", arguments)
