"""OpenAI Chat Completions streams (``chat.completion.chunk``), and compatible providers.

Covers OpenAI, Azure OpenAI, Groq, DeepSeek, OpenRouter, Perplexity, Mistral, vLLM, Ollama's
and LM Studio's OpenAI endpoints. Source of the rules: OpenAI API reference, "The chat
completion chunk object"; provider quirks as recorded in the test fixtures' FORMATS.md.

Only choice 0 is streamed (requests with ``n > 1`` are rare in chat UIs); the other choices'
deltas are ignored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._exceptions import ProviderError
from .._model import (
    Finish,
    FinishReason,
    LLMEvent,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "length": "length",
    "model_length": "length",  # Mistral
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "error": "error",
}


def finish(raw: str) -> Finish:
    """A :class:`Finish` from a Chat Completions ``finish_reason``."""
    return Finish(_FINISH.get(raw, "other"), raw)


def usage(raw: Mapping[str, Any]) -> Usage:
    """A :class:`Usage` from a Chat Completions ``usage`` object."""
    details = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=raw.get("prompt_tokens"),
        output_tokens=raw.get("completion_tokens"),
        total_tokens=raw.get("total_tokens"),
        reasoning_tokens=details.get("reasoning_tokens") if isinstance(details, Mapping) else None,
        raw=raw,
    )


def matches(item: Any) -> bool:
    """An OpenAI SDK ``ChatCompletionChunk`` or its JSON mapping.

    Perplexity labels its chunks ``"object": "chat.completion"`` and Azure's first chunk has
    ``"object": ""`` (with ``prompt_filter_results``), so any ``chat.completion*`` or empty
    object with ``choices`` is accepted.
    """
    if type(item).__name__ == "ChatCompletionChunk":
        return True
    if isinstance(item, Mapping):
        kind, has_choices = item.get("object"), "choices" in item
    else:
        kind, has_choices = getattr(item, "object", None), hasattr(item, "choices")
    return (
        has_choices and isinstance(kind, str) and (not kind or kind.startswith("chat.completion"))
    )


def translate(exc: BaseException) -> ProviderError | None:
    """The provider's message from an ``openai`` SDK exception (in-stream or HTTP status)."""
    if type(exc).__module__.split(".")[0] != "openai":
        return None
    body = getattr(exc, "body", None)
    message = getattr(exc, "message", None)
    code: Any = getattr(exc, "code", None) or getattr(exc, "status_code", None)
    if isinstance(body, Mapping):
        error = body.get("error", body)
        if isinstance(error, Mapping) and isinstance(error.get("message"), str):
            message = error["message"]
            code = error.get("code") or error.get("type") or code
    if type(exc).__name__ in ("APIConnectionError", "APITimeoutError"):
        message = "The model provider could not be reached."
    if not isinstance(message, str) or not message:
        return None
    return ProviderError(message, None if code is None else str(code))


class Normalizer:
    """Normalises ``chat.completion.chunk`` objects.

    Tool-call fragments are joined by ``index`` and announced as :class:`ToolCallDelta`;
    each call is emitted whole as :class:`ToolCall` when the choice finishes (or the stream
    ends). Mistral sends calls whole with no ``index``: they are numbered in arrival order.
    Usage is taken from the last chunk that carries it (``usage``, or Groq's ``x_groq.usage``)
    and emitted at the end, since Perplexity repeats it on every chunk. One :class:`Finish`
    per stream: OpenRouter repeats ``finish_reason`` on its trailing usage chunk.
    """

    def __init__(self) -> None:
        self._calls: dict[int, list[Any]] = {}  # index -> [id, name, [argument fragments]]
        self._usage: Mapping[str, Any] | None = None
        self._finished = False  # OpenRouter repeats finish_reason on its trailing usage chunk

    def feed(self, item: Any) -> list[LLMEvent]:
        from . import as_mapping

        chunk = as_mapping(item)
        out: list[LLMEvent] = []
        error = chunk.get("error")
        if error:
            # OpenRouter: a normal chunk with a top-level error object.
            if isinstance(error, Mapping):
                code = error.get("code") or error.get("type")
                out.append(StreamError(str(error.get("message") or "Provider error"), _str(code)))
            else:
                out.append(StreamError(str(error)))
            return out
        raw_usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")
        if isinstance(raw_usage, Mapping) and raw_usage:
            self._usage = raw_usage
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out.append(ReasoningDelta(reasoning))
            content = delta.get("content")
            if isinstance(content, str):
                if content:
                    out.append(TextDelta(content))
            elif isinstance(content, list):
                out.extend(_typed_parts(content))
            for call in delta.get("tool_calls") or ():
                out.append(self._tool_call_fragment(call))
            raw_finish = choice.get("finish_reason")
            if raw_finish:
                out.extend(self._flush())
                if not self._finished:
                    self._finished = True
                    out.append(finish(raw_finish))
        return out

    def close(self) -> list[LLMEvent]:
        out: list[LLMEvent] = self._flush()
        if self._usage is not None:
            out.append(usage(self._usage))
            self._usage = None
        return out

    def _tool_call_fragment(self, call: Mapping[str, Any]) -> ToolCallDelta:
        index = call.get("index")
        if index is None:
            index = len(self._calls)
        function = call.get("function") or {}
        arguments = function.get("arguments") or ""
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        state = self._calls.get(index)
        if state is None:
            state = self._calls[index] = [call.get("id") or "", function.get("name") or "", []]
        else:
            state[0] = state[0] or call.get("id") or ""
            state[1] = state[1] or function.get("name") or ""
        state[2].append(arguments)
        return ToolCallDelta(index, state[0], state[1], arguments)

    def _flush(self) -> list[LLMEvent]:
        calls: list[LLMEvent] = [
            ToolCall(index, state[0], state[1], "".join(state[2]))
            for index, state in sorted(self._calls.items())
        ]
        self._calls.clear()
        return calls


def _typed_parts(parts: list[Any]) -> list[LLMEvent]:
    """Mistral/Magistral content arrays: ``text`` parts and ``thinking`` parts."""
    out: list[LLMEvent] = []
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            out.append(TextDelta(str(part["text"])))
        elif kind == "thinking":
            for inner in part.get("thinking") or ():
                if isinstance(inner, Mapping) and inner.get("text"):
                    out.append(ReasoningDelta(str(inner["text"])))
    return out


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
