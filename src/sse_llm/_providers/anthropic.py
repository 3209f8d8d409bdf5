"""Anthropic Messages API streams (``client.messages.create(stream=True)``, raw events).

Source of the rules: Anthropic API reference, "Streaming Messages" (event flow, delta types,
``stop_reason`` values, "Error events"); shapes as recorded in the test fixtures' FORMATS.md.

Mapped:

- ``text_delta`` -> :class:`TextDelta`; ``thinking_delta`` -> :class:`ReasoningDelta`
  (``signature_delta``, ``citations_delta`` and ``redacted_thinking`` blocks carry nothing to
  show and are skipped);
- a ``tool_use`` block -> :class:`ToolCallDelta` (``content_block_start`` announces id and name,
  each ``input_json_delta.partial_json`` is a fragment), then :class:`ToolCall` with the
  fragments joined at its ``content_block_stop``. The tool index counts ``tool_use`` blocks
  only (0, 1, ...), whatever their content-block index;
- ``server_tool_use`` / ``mcp_tool_use`` blocks and every ``*_tool_result`` block are NOT
  surfaced: Anthropic runs those tools itself and streams their results in the same response,
  so reporting them as tool calls would ask the caller to run a tool it does not have. The
  model's text around them is streamed as usual;
- ``message_delta.delta.stop_reason`` -> :class:`Finish`: ``end_turn``, ``stop_sequence``,
  ``pause_turn`` -> ``stop``; ``max_tokens``, ``model_context_window_exceeded`` -> ``length``;
  ``tool_use`` -> ``tool_calls``; ``refusal`` -> ``content_filter``;
- ``message_start.message.usage`` updated by each ``message_delta.usage`` (cumulative counts)
  -> one :class:`Usage` at the end of the stream (``input_tokens`` as Anthropic reports it,
  i.e. without cache reads and writes, which stay in ``Usage.raw``);
- the ``error`` event -> :class:`StreamError` (message, and the error ``type`` as code);
- ``ping`` and ``message_stop`` -> nothing.

Works with ``messages.create(stream=True)`` and with ``messages.stream()``, whose extra
derived events (``text``, ``thinking``, ``input_json`` ...) duplicate the raw ones and are
ignored.
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
from . import as_mapping, error_fields

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_EVENTS = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
    }
)


def finish(raw: str) -> Finish:
    """A :class:`Finish` from a Messages ``stop_reason``."""
    return Finish(_FINISH.get(raw, "other"), raw)


def matches(item: Any) -> bool:
    """A raw Messages stream event: an ``anthropic`` SDK object or its JSON mapping."""
    if isinstance(item, Mapping):
        kind = item.get("type")
        return kind in _EVENTS or (kind == "error" and isinstance(item.get("error"), Mapping))
    return type(item).__module__.startswith("anthropic.") and getattr(item, "type", None) in (
        _EVENTS
    )


def translate(exc: BaseException) -> ProviderError | None:
    """The provider's message from an ``anthropic`` SDK exception.

    The SDK raises ``APIStatusError`` both for a non-200 answer and for an ``event: error``
    inside a 200 stream; its ``body`` is ``{"type": "error", "error": {"type", "message"}}``,
    while its own message is a Python repr of that body, unfit for an end user.
    """
    if type(exc).__module__.split(".")[0] != "anthropic":
        return None
    if type(exc).__name__ in ("APIConnectionError", "APITimeoutError"):
        return ProviderError("The model provider could not be reached.", None)
    body = getattr(exc, "body", None)
    # Only a JSON body is the provider's own wording; a text body may be a proxy's HTML page.
    message, code = error_fields(body) if isinstance(body, Mapping | list) else (None, None)
    status = getattr(exc, "status_code", None)
    if message is None:
        if status is None:
            return None
        message = f"The model provider answered with HTTP status {status}."
    if code is None and status is not None:
        code = str(status)
    return ProviderError(message, code)


class _Tool:
    __slots__ = ("id", "index", "input", "name", "parts")

    def __init__(self, index: int, block: Mapping[str, Any]) -> None:
        self.index = index
        self.id: str = block.get("id") or ""
        self.name: str = block.get("name") or ""
        self.input: Any = block.get("input")
        self.parts: list[str] = []

    def whole(self) -> list[LLMEvent]:
        arguments = "".join(self.parts)
        if arguments.strip():
            return [ToolCall(self.index, self.id, self.name, arguments)]
        # No input streamed: the block's own ``input`` (``{}`` for a tool without parameters),
        # as the SDK's accumulator does; sent as a fragment too, so the fragments still join
        # to the call's arguments.
        arguments = _dumps(self.input if isinstance(self.input, Mapping) else {})
        return [
            ToolCallDelta(self.index, self.id, self.name, arguments),
            ToolCall(self.index, self.id, self.name, arguments),
        ]


class Normalizer:
    """Normalises raw Messages stream events (see the module docstring for the mapping)."""

    def __init__(self) -> None:
        self._tools: dict[int, _Tool] = {}  # content-block index -> open tool_use block
        self._tool_count = 0
        self._usage: dict[str, Any] = {}

    def feed(self, item: Any) -> list[LLMEvent]:
        if not isinstance(item, Mapping) and getattr(item, "type", None) == "content_block_delta":
            # The hot path reads the SDK object's attributes: no model_dump per token.
            delta = getattr(item, "delta", None)
            if getattr(delta, "type", None) == "text_delta":
                text = getattr(delta, "text", None)
                return [TextDelta(text)] if isinstance(text, str) and text else []
        event = as_mapping(item)
        kind = event.get("type")
        if kind == "content_block_delta":
            return self._delta(event)
        if kind == "content_block_start":
            return self._block_start(event)
        if kind == "content_block_stop":
            tool = self._tools.pop(event.get("index", -1), None)
            return tool.whole() if tool is not None else []
        if kind == "message_start":
            message = event.get("message")
            if isinstance(message, Mapping) and isinstance(message.get("usage"), Mapping):
                self._usage.update(message["usage"])
            return []
        if kind == "message_delta":
            if isinstance(event.get("usage"), Mapping):
                # Counts are cumulative: the latest value of each key wins.
                self._usage.update({k: v for k, v in event["usage"].items() if v is not None})
            delta = event.get("delta")
            raw = delta.get("stop_reason") if isinstance(delta, Mapping) else None
            if isinstance(raw, str) and raw:
                return [*self._flush(), finish(raw)]
            return []
        if kind == "error":
            message, code = error_fields(event)
            return [StreamError(message or "The model provider reported an error.", code)]
        return []  # ping, message_stop, and the SDK helper's derived events

    def close(self) -> list[LLMEvent]:
        out: list[LLMEvent] = self._flush()
        if self._usage:
            raw = self._usage
            out.append(
                Usage(
                    input_tokens=_int(raw.get("input_tokens")),
                    output_tokens=_int(raw.get("output_tokens")),
                    raw=raw,
                )
            )
            self._usage = {}
        return out

    def _block_start(self, event: Mapping[str, Any]) -> list[LLMEvent]:
        block = event.get("content_block")
        if not isinstance(block, Mapping):
            return []
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if kind == "thinking":
            text = block.get("thinking")
            return [ReasoningDelta(text)] if isinstance(text, str) and text else []
        if kind == "tool_use":
            tool = self._tools[event.get("index", -1)] = _Tool(self._tool_count, block)
            self._tool_count += 1
            return [ToolCallDelta(tool.index, tool.id, tool.name, "")]
        return []  # server tools and their results run on Anthropic's side

    def _delta(self, event: Mapping[str, Any]) -> list[LLMEvent]:
        delta = event.get("delta")
        if not isinstance(delta, Mapping):
            return []
        kind = delta.get("type")
        if kind == "text_delta":
            text = delta.get("text")
            return [TextDelta(text)] if isinstance(text, str) and text else []
        if kind == "thinking_delta":
            text = delta.get("thinking")
            return [ReasoningDelta(text)] if isinstance(text, str) and text else []
        if kind == "input_json_delta":
            tool = self._tools.get(event.get("index", -1))
            fragment = delta.get("partial_json")
            if tool is None or not isinstance(fragment, str) or not fragment:
                return []
            tool.parts.append(fragment)
            return [ToolCallDelta(tool.index, tool.id, tool.name, fragment)]
        return []

    def _flush(self) -> list[LLMEvent]:
        calls: list[LLMEvent] = []
        for _, tool in sorted(self._tools.items()):
            calls.extend(tool.whole())
        self._tools.clear()
        return calls


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) else None


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
