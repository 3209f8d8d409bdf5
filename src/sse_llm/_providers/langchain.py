"""LangChain chat model streams: the ``AIMessageChunk`` objects of ``model.astream(...)``.

Any LangChain chat model (``ChatOpenAI``, ``ChatAnthropic``, ``ChatGoogleGenerativeAI``,
``ChatOllama`` ...) yields ``langchain_core.messages.AIMessageChunk``; this module reads the
provider-neutral fields LangChain defines on it, so it does not import LangChain. (A chain
ending in ``StrOutputParser`` yields ``str``, which needs no normaliser.) Source of the rules:
``langchain_core.messages.ai`` (``AIMessageChunk``, ``UsageMetadata``, ``add_usage``) and the
content-block types of ``langchain_core.messages.content``.

Mapped:

- ``content`` as ``str`` -> :class:`TextDelta`; as a list of blocks: ``text`` blocks (and bare
  strings) -> :class:`TextDelta`; ``thinking`` (Anthropic), ``reasoning`` (LangChain v1
  standard blocks, with ``reasoning`` text, or OpenAI's ``summary`` list) ->
  :class:`ReasoningDelta`; other blocks (``tool_use``, images ...) -> nothing;
- ``additional_kwargs["reasoning_content"]`` (DeepSeek and OpenAI-compatible reasoners) ->
  :class:`ReasoningDelta`;
- ``tool_call_chunks`` -> :class:`ToolCallDelta`, joined by their ``index`` (a chunk with no
  index starts a new call) into one :class:`ToolCall` each when the stream finishes;
- ``usage_metadata``: LangChain's chunks are *added* when merged (``add_usage``), so counts
  are summed over the stream -> one :class:`Usage` at the end (``input_tokens``,
  ``output_tokens``, ``total_tokens``, ``output_token_details.reasoning``);
- ``response_metadata`` ``finish_reason`` (OpenAI, Gemini), ``stop_reason`` (Anthropic) or
  ``done_reason`` (Ollama) -> :class:`Finish`, mapped as by that provider's own normaliser.
  LangChain marks the last chunk of a completed stream with ``chunk_position="last"``; when
  no reason was reported, that marker finishes the answer as ``stop`` (``tool_calls`` if
  calls were made) with no raw reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._model import (
    Finish,
    FinishReason,
    LLMEvent,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from . import anthropic, gemini, ollama, openai_chat

# Each provider's own table; their keys do not clash (Gemini's are upper case).
_FINISH: dict[str, FinishReason] = {
    **ollama._FINISH,
    **gemini._FINISH,
    **anthropic._FINISH,
    **openai_chat._FINISH,
}
_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")


def matches(item: Any) -> bool:
    """A ``langchain_core`` ``AIMessageChunk``."""
    kind = type(item)
    return kind.__name__ == "AIMessageChunk" and kind.__module__.startswith("langchain_core")


class _Call:
    __slots__ = ("id", "index", "name", "parts")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id = ""
        self.name = ""
        self.parts: list[str] = []


class Normalizer:
    """Normalises ``AIMessageChunk`` objects (see the module docstring)."""

    def __init__(self) -> None:
        self._calls: dict[Any, _Call] = {}  # tool_call_chunk index (or a fresh key) -> call
        self._usage: dict[str, int] = {}
        self._raw_usage: list[Any] = []
        self._raw_finish: str | None = None
        self._finished = False

    def feed(self, item: Any) -> list[LLMEvent]:
        out: list[LLMEvent] = []
        content = getattr(item, "content", None)
        if isinstance(content, str):
            if content:
                out.append(TextDelta(content))
        elif isinstance(content, list):
            out.extend(_blocks(content))
        extra = getattr(item, "additional_kwargs", None)
        if isinstance(extra, Mapping):
            reasoning = extra.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                out.insert(0, ReasoningDelta(reasoning))
        for chunk in getattr(item, "tool_call_chunks", None) or ():
            out.append(self._fragment(chunk))
        usage = getattr(item, "usage_metadata", None)
        if isinstance(usage, Mapping):
            self._add_usage(usage)
        metadata = getattr(item, "response_metadata", None)
        if isinstance(metadata, Mapping):
            for key in ("finish_reason", "stop_reason", "done_reason"):
                raw = metadata.get(key)
                if isinstance(raw, str) and raw:
                    self._raw_finish = raw
                    break
        if getattr(item, "chunk_position", None) == "last":
            out.extend(self._finish())
        return out

    def close(self) -> list[LLMEvent]:
        out: list[LLMEvent] = []
        if self._raw_finish is not None and not self._finished:
            out.extend(self._finish())
        else:
            out.extend(self._flush())
        if self._raw_usage:
            out.append(
                Usage(
                    input_tokens=self._usage.get("input_tokens"),
                    output_tokens=self._usage.get("output_tokens"),
                    total_tokens=self._usage.get("total_tokens"),
                    reasoning_tokens=self._usage.get("reasoning_tokens"),
                    raw={"usage_metadata": self._raw_usage},
                )
            )
            self._raw_usage = []
        return out

    def _fragment(self, chunk: Any) -> ToolCallDelta:
        chunk = chunk if isinstance(chunk, Mapping) else {}
        key = chunk.get("index")
        if key is None:
            key = ("position", len(self._calls))
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = _Call(len(self._calls))
        call.id = call.id or chunk.get("id") or ""
        call.name = call.name or chunk.get("name") or ""
        arguments = chunk.get("args") or ""
        call.parts.append(arguments)
        return ToolCallDelta(call.index, call.id, call.name, arguments)

    def _flush(self) -> list[LLMEvent]:
        calls: list[LLMEvent] = [
            ToolCall(call.index, call.id, call.name, "".join(call.parts))
            for call in self._calls.values()
        ]
        self._calls.clear()
        return calls

    def _finish(self) -> list[LLMEvent]:
        made_calls = bool(self._calls)
        out = self._flush()
        if self._finished:
            return out
        self._finished = True
        raw = self._raw_finish
        reason: FinishReason = _FINISH.get(raw, "other") if raw is not None else "stop"
        if reason == "stop" and made_calls:
            reason = "tool_calls"
        out.append(Finish(reason, raw))
        return out

    def _add_usage(self, usage: Mapping[str, Any]) -> None:
        self._raw_usage.append(dict(usage))
        for key in _USAGE_KEYS:
            value = usage.get(key)
            if isinstance(value, int):
                self._usage[key] = self._usage.get(key, 0) + value
        details = usage.get("output_token_details")
        if isinstance(details, Mapping) and isinstance(details.get("reasoning"), int):
            total = self._usage.get("reasoning_tokens", 0) + details["reasoning"]
            self._usage["reasoning_tokens"] = total


def _blocks(blocks: list[Any]) -> list[LLMEvent]:
    out: list[LLMEvent] = []
    for block in blocks:
        if isinstance(block, str):
            if block:
                out.append(TextDelta(block))
            continue
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            if isinstance(text, str) and text:
                out.append(TextDelta(text))
        elif kind in ("thinking", "reasoning"):
            text = block.get(kind)
            if isinstance(text, str) and text:
                out.append(ReasoningDelta(text))
            for summary in block.get("summary") or ():
                if isinstance(summary, Mapping) and summary.get("text"):
                    out.append(ReasoningDelta(str(summary["text"])))
    return out
