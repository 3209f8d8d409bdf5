"""The Databricks agent streaming shape: ``{"delta": {"text": ...}, "event_type": "delta"}``.

Each SSE ``data:`` line is one JSON object naming its kind in ``event_type``; the stream ends
with ``data: [DONE]`` (read it with :func:`sse_llm.sources.sse_json`, which stops there). The
shape is the project's own reference for Databricks-style agent endpoints; no recording of a
live endpoint exists (the test golden file is synthetic).

Mapped: ``event_type: "delta"`` -> :class:`TextDelta` from ``delta.text`` (or a ``delta``
that is itself a string); an object with an ``error`` (a string or ``{"message", "code"}``)
or ``event_type: "error"`` -> :class:`ErrorEvent`; any other event type -> nothing. The
format has no finish reason, usage, citations or tool activity: its end is ``[DONE]``, so
``done`` reports no finish reason. It has one answer per stream, so no ``choice``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._model import ErrorEvent, LLMEvent, TextDelta
from ._common import error_fields


def matches(item: Any) -> bool:
    """A mapping with a string ``event_type``."""
    return isinstance(item, Mapping) and isinstance(item.get("event_type"), str)


class Normalizer:
    """Normalises Databricks agent stream objects (see the module docstring)."""

    def feed(self, item: Any) -> list[LLMEvent]:
        if not isinstance(item, Mapping):
            return []
        kind = item.get("event_type")
        if item.get("error") or kind == "error":
            message, code = error_fields(item.get("error") or item)
            return [ErrorEvent(message or "The model provider reported an error.", code)]
        if kind != "delta":
            return []
        delta = item.get("delta")
        text = delta.get("text") if isinstance(delta, Mapping) else delta
        return [TextDelta(text)] if isinstance(text, str) and text else []

    def close(self) -> list[LLMEvent]:
        return []
