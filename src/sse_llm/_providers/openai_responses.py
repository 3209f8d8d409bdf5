"""OpenAI Responses API streams (``client.responses.create(stream=True)``).

Source of the rules: OpenAI API reference, "Streaming events" of the Responses API; shapes as
recorded in the test fixtures' FORMATS.md. Every event carries its kind in ``type`` and a
``sequence_number``; OpenRouter's Responses endpoint sends the same events (without ``event:``
lines, plus ``data: [DONE]``).

Mapped:

- ``response.output_text.delta`` and ``response.refusal.delta`` -> :class:`TextDelta` (a
  refusal is the text the user should see);
- ``response.reasoning_summary_text.delta`` and ``response.reasoning_text.delta`` (open-weight
  models' raw reasoning) -> :class:`ReasoningDelta`;
- a ``function_call`` output item (``response.output_item.added`` gives ``name`` and
  ``call_id``; ``response.function_call_arguments.delta`` the argument pieces) ->
  :class:`ToolCallDelta`, then :class:`ToolCall` at ``response.function_call_arguments.done``
  (whose ``arguments`` are authoritative). The call's id is ``call_id``, the one a
  ``function_call_output`` must cite, not the ``fc_...`` item id. Built-in tools
  (``web_search_call``, ``file_search_call``, ``code_interpreter_call`` ...) run on OpenAI's
  side and are not surfaced;
- the terminal ``response.completed`` / ``response.incomplete`` -> :class:`Finish` (``stop``,
  or ``tool_calls`` when function calls were made; ``incomplete_details.reason``
  ``max_output_tokens`` -> ``length``, ``content_filter`` -> ``content_filter``). The raw
  reason is the status (``"completed"``) or the incomplete reason (``"max_output_tokens"``);
- the terminal response's ``usage`` -> :class:`Usage` (input, output, total, and
  ``output_tokens_details.reasoning_tokens``), at the end of the stream;
- the ``error`` event and ``response.failed`` (``response.error``) -> :class:`StreamError` with
  the provider's message and code (once: OpenAI sends both for one failure).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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

_INCOMPLETE: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}
_TEXT = frozenset({"response.output_text.delta", "response.refusal.delta"})
_REASONING = frozenset({"response.reasoning_summary_text.delta", "response.reasoning_text.delta"})


def matches(item: Any) -> bool:
    """A Responses stream event: an ``openai`` SDK event object (from ``responses.create``
    or the ``responses.stream()`` helper) or its JSON mapping."""
    if isinstance(item, Mapping):
        kind = item.get("type")
        if not isinstance(kind, str):
            return False
        return kind.startswith("response.") or (kind == "error" and "sequence_number" in item)
    if not type(item).__module__.startswith("openai."):
        return False
    kind = getattr(item, "type", None)
    return isinstance(kind, str) and (kind.startswith("response.") or kind == "error")


def usage(raw: Mapping[str, Any]) -> Usage:
    """A :class:`Usage` from a Responses ``usage`` object."""
    details = raw.get("output_tokens_details")
    return Usage(
        input_tokens=raw.get("input_tokens"),
        output_tokens=raw.get("output_tokens"),
        total_tokens=raw.get("total_tokens"),
        reasoning_tokens=details.get("reasoning_tokens") if isinstance(details, Mapping) else None,
        raw=raw,
    )


class _Call:
    __slots__ = ("call_id", "done", "index", "name", "parts")

    def __init__(self, index: int, call_id: str, name: str) -> None:
        self.index = index
        self.call_id = call_id
        self.name = name
        self.parts: list[str] = []
        self.done = False

    def whole(self, arguments: str | None = None) -> ToolCall:
        self.done = True
        text = arguments if arguments is not None else "".join(self.parts)
        return ToolCall(self.index, self.call_id, self.name, text)


class Normalizer:
    """Normalises Responses API stream events (see the module docstring for the mapping)."""

    def __init__(self) -> None:
        self._calls: dict[str, _Call] = {}  # output item id -> call
        self._usage: Mapping[str, Any] | None = None
        self._failed = False

    def feed(self, item: Any) -> list[LLMEvent]:
        event = as_mapping(item)
        kind = event.get("type")
        if kind in _TEXT:
            delta = event.get("delta")
            return [TextDelta(delta)] if isinstance(delta, str) and delta else []
        if kind in _REASONING:
            delta = event.get("delta")
            return [ReasoningDelta(delta)] if isinstance(delta, str) and delta else []
        if kind == "response.function_call_arguments.delta":
            call = self._call(event.get("item_id"))
            delta = event.get("delta") or ""
            call.parts.append(delta)
            return [ToolCallDelta(call.index, call.call_id, call.name, delta)] if delta else []
        if kind == "response.output_item.added":
            return self._item_added(event.get("item"))
        if kind == "response.function_call_arguments.done":
            call = self._call(event.get("item_id"))
            call.name = call.name or event.get("name") or ""
            if call.done:
                return []
            arguments = event.get("arguments")
            return [call.whole(arguments if isinstance(arguments, str) else None)]
        if kind == "response.output_item.done":
            return self._item_done(event.get("item"))
        if kind in ("response.completed", "response.incomplete"):
            return self._end(event.get("response"))
        if kind == "response.failed":
            response = event.get("response")
            if isinstance(response, Mapping) and isinstance(response.get("usage"), Mapping):
                self._usage = response["usage"]
            return self._error(response.get("error") if isinstance(response, Mapping) else None)
        if kind == "error":
            return self._error(event)
        return []

    def close(self) -> list[LLMEvent]:
        out: list[LLMEvent] = self._flush()
        if self._usage is not None:
            out.append(usage(self._usage))
            self._usage = None
        return out

    def _call(self, item_id: Any) -> _Call:
        call = self._calls.get(item_id)
        if call is None:  # arguments before the item was announced: keep them anyway
            call = self._calls[item_id] = _Call(len(self._calls), "", "")
        return call

    def _item_added(self, item: Any) -> list[LLMEvent]:
        if not isinstance(item, Mapping) or item.get("type") != "function_call":
            return []
        call = self._call(item.get("id"))
        call.call_id = item.get("call_id") or call.call_id
        call.name = item.get("name") or call.name
        arguments = item.get("arguments") or ""
        if arguments:
            call.parts.append(arguments)
        return [ToolCallDelta(call.index, call.call_id, call.name, arguments)]

    def _item_done(self, item: Any) -> list[LLMEvent]:
        if not isinstance(item, Mapping) or item.get("type") != "function_call":
            return []
        call = self._call(item.get("id"))
        call.call_id = call.call_id or item.get("call_id") or ""
        call.name = call.name or item.get("name") or ""
        if call.done:
            return []
        arguments = item.get("arguments")
        return [call.whole(arguments if isinstance(arguments, str) else None)]

    def _flush(self) -> list[LLMEvent]:
        return [call.whole() for call in self._calls.values() if not call.done]

    def _end(self, response: Any) -> list[LLMEvent]:
        out = self._flush()
        if not isinstance(response, Mapping):
            return out
        if isinstance(response.get("usage"), Mapping):
            self._usage = response["usage"]
        status = response.get("status") or "completed"
        if status == "incomplete":
            details = response.get("incomplete_details")
            raw = (details.get("reason") if isinstance(details, Mapping) else None) or status
            out.append(Finish(_INCOMPLETE.get(raw, "other"), raw))
        elif status == "completed":
            out.append(Finish("tool_calls" if self._calls else "stop", status))
        else:
            out.append(Finish("other", str(status)))
        return out

    def _error(self, error: Any) -> list[LLMEvent]:
        if self._failed:
            return []
        self._failed = True
        message, code = error_fields(error)
        return [StreamError(message or "The model provider reported an error.", code)]
