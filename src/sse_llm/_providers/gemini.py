"""Google Gemini ``streamGenerateContent`` streams (Gemini API and Vertex AI).

One ``GenerateContentResponse`` per item, whether it came from ``?alt=sse`` (read it with
:func:`sse_llm.sources.sse_json`), from the JSON-array form without ``alt=sse``
(:func:`sse_llm.sources.json_array`), or from the ``google-genai`` SDK
(``client.aio.models.generate_content_stream``: its pydantic objects are dumped by alias, so
they have the same camelCase fields). Source of the rules: Gemini API reference,
"GenerateContentResponse" / "Candidate" / "UsageMetadata"; shapes as recorded in the test
fixtures' FORMATS.md.

Mapped (candidate 0 only, as for OpenAI's ``n > 1``):

- ``text`` parts -> :class:`TextDelta`; parts with ``"thought": true`` -> :class:`ReasoningDelta`
  (``thoughtSignature`` is opaque and skipped);
- ``functionCall`` parts arrive whole -> :class:`ToolCall` directly, numbered in arrival order,
  ``args`` written as compact JSON; the id is ``functionCall.id`` when given (Vertex may), else
  ``""`` (the Gemini API gives none). ``executableCode`` / ``codeExecutionResult`` parts are
  Gemini's own code execution and are not surfaced;
- ``finishReason`` -> :class:`Finish`: ``STOP`` -> ``stop`` (``tool_calls`` when the response
  made function calls, since Gemini says ``STOP`` then too), ``MAX_TOKENS`` -> ``length``,
  ``SAFETY``, ``RECITATION``, ``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII`` and the
  ``IMAGE_*`` reasons -> ``content_filter``, anything else -> ``other``. Requests made with
  ``enum-encoding=int`` get numbers (``google.ai.generativelanguage.v1beta.Candidate.
  FinishReason``: 1 STOP, 2 MAX_TOKENS, 3 SAFETY, 4 RECITATION, 5 OTHER, 6 LANGUAGE,
  7 BLOCKLIST, 8 PROHIBITED_CONTENT, 9 SPII, 10 MALFORMED_FUNCTION_CALL, 11 IMAGE_SAFETY);
  the raw reason is then the number as text (``"1"``);
- a blocked prompt (``promptFeedback.blockReason``, no candidates) -> :class:`Finish`
  ``content_filter`` with the block reason;
- ``usageMetadata`` is repeated with running counts; the last one -> :class:`Usage` at the end
  (``promptTokenCount``, ``candidatesTokenCount``, ``totalTokenCount``,
  ``thoughtsTokenCount``). Note: Gemini counts thought tokens apart from
  ``candidatesTokenCount``; ``output_tokens`` is reported as Gemini gives it;
- an ``error`` object -> :class:`StreamError` (message, and ``status`` as code).
"""

from __future__ import annotations

import json
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
    Usage,
)
from . import error_fields

_FILTERED = ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII")
_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **dict.fromkeys(_FILTERED, "content_filter"),
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}
# enum-encoding=int (google.ai.generativelanguage.v1beta Candidate.FinishReason numbers).
_FINISH_NUMBERS: dict[int, FinishReason] = {
    1: "stop",
    2: "length",
    3: "content_filter",
    4: "content_filter",
    7: "content_filter",
    8: "content_filter",
    9: "content_filter",
    11: "content_filter",
}


def matches(item: Any) -> bool:
    """A ``GenerateContentResponse``: a ``google-genai`` object or its JSON mapping."""
    if isinstance(item, Mapping):
        return "candidates" in item or "usageMetadata" in item or "promptFeedback" in item
    return type(item).__name__ == "GenerateContentResponse"


def finish(raw: Any, made_calls: bool = False) -> Finish:
    """A :class:`Finish` from a ``finishReason`` (its name, or its number under int enums)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        reason = _FINISH_NUMBERS.get(raw, "other")
    else:
        raw = str(raw)
        reason = _FINISH.get(raw, "other")
    if reason == "stop" and made_calls:
        reason = "tool_calls"
    return Finish(reason, str(raw))


def usage(raw: Mapping[str, Any]) -> Usage:
    """A :class:`Usage` from a ``usageMetadata`` object."""
    return Usage(
        input_tokens=raw.get("promptTokenCount"),
        output_tokens=raw.get("candidatesTokenCount"),
        total_tokens=raw.get("totalTokenCount"),
        reasoning_tokens=raw.get("thoughtsTokenCount"),
        raw=raw,
    )


def _mapping(item: Any) -> Mapping[str, Any]:
    if isinstance(item, Mapping):
        return item
    # google-genai models have snake_case attributes with camelCase aliases (the wire names).
    result: Mapping[str, Any] = item.model_dump(mode="json", by_alias=True, exclude_none=True)
    return result


class Normalizer:
    """Normalises ``GenerateContentResponse`` chunks (see the module docstring)."""

    def __init__(self) -> None:
        self._calls = 0
        self._usage: Mapping[str, Any] | None = None

    def feed(self, item: Any) -> list[LLMEvent]:
        chunk = _mapping(item)
        out: list[LLMEvent] = []
        if chunk.get("error"):
            message, code = error_fields(chunk)
            return [StreamError(message or "The model provider reported an error.", code)]
        metadata = chunk.get("usageMetadata")
        if isinstance(metadata, Mapping) and metadata:
            self._usage = metadata
        candidates = chunk.get("candidates")
        if not candidates:
            feedback = chunk.get("promptFeedback")
            if isinstance(feedback, Mapping) and feedback.get("blockReason"):
                out.append(Finish("content_filter", str(feedback["blockReason"])))
            return out
        for candidate in candidates:
            if not isinstance(candidate, Mapping) or candidate.get("index", 0) != 0:
                continue
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, Mapping) else None
            for part in parts or ():
                out.extend(self._part(part))
            raw = candidate.get("finishReason")
            if raw is not None and raw not in (0, "FINISH_REASON_UNSPECIFIED"):
                out.append(finish(raw, self._calls > 0))
        return out

    def close(self) -> list[LLMEvent]:
        if self._usage is None:
            return []
        out: list[LLMEvent] = [usage(self._usage)]
        self._usage = None
        return out

    def _part(self, part: Any) -> list[LLMEvent]:
        if not isinstance(part, Mapping):
            return []
        call = part.get("functionCall")
        if isinstance(call, Mapping):
            index = self._calls
            self._calls += 1
            arguments = json.dumps(
                call.get("args") or {}, ensure_ascii=False, separators=(",", ":")
            )
            return [ToolCall(index, call.get("id") or "", call.get("name") or "", arguments)]
        text = part.get("text")
        if not isinstance(text, str) or not text:
            return []
        return [ReasoningDelta(text) if part.get("thought") else TextDelta(text)]
