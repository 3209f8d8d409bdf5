"""OpenAPI descriptions of stream responses, read off what a wire format actually writes.

A format is not described by hand: :func:`stream_openapi` runs a sample answer (reasoning,
text, a tool call, a citation, a provider-run tool, usage and finish; then a second answer
that fails) through a :class:`~sse_llm.StreamEngine` with the format, decodes the bytes, and
describes every kind of event it saw (name, and the shape of its JSON data) in the
``itemSchema`` of ``text/event-stream`` (OpenAPI 3.2 §4.14.4, as FastAPI's own SSE routes
do). So the description stays true to the format, a custom one included.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from ._decoder import SSEDecoder
from ._engine import StreamEngine
from ._events import ServerSentEvent
from ._exceptions import ProviderError
from ._formats import WireFormat
from ._model import Citation, Finish, ReasoningDelta, ToolActivity, ToolCall, Usage

__all__ = ["GENERIC_EVENT", "stream_openapi"]

logger = logging.getLogger("sse_llm")

#: One server-sent event, whatever the format (the fields of WHATWG HTML §9.2.6).
GENERIC_EVENT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "string"},
        "data": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}

_SAMPLE: list[Any] = [
    ReasoningDelta("The user greets me."),
    "Hello",
    " world",
    Citation("url", url="https://example.com/", title="Example", start=0, end=11, index=1),
    ToolActivity("ws_1", "web_search", "started", summary="weather in Seoul"),
    ToolActivity("ws_1", "web_search", "finished", summary="5 results"),
    ToolCall(0, "call_1", "get_weather", '{"city":"Seoul"}'),
    Usage(input_tokens=9, output_tokens=12, total_tokens=21),
    Finish("stop", "stop"),
]
_JSON_TYPES = ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"))


def stream_openapi(fmt: WireFormat | None, description: str | None = None) -> dict[str, Any]:
    """An OpenAPI response object for a stream in ``fmt``.

    Args:
        fmt: the wire format, or ``None`` when it is chosen per request (then every event is
            described only as an SSE event).
        description: the response's description (default: the format and its event names).

    Returns:
        ``{"description": ..., "content": {<media type>: {"schema": ..., "itemSchema": ...}}}``.
    """
    if fmt is None:
        return {
            "description": description or "A stream of server-sent events.",
            "content": {
                "text/event-stream": {
                    "schema": {"type": "string", "format": "event-stream"},
                    "itemSchema": GENERIC_EVENT,
                }
            },
        }
    name = type(fmt).__name__
    try:
        events = _sample_events(fmt)
    except Exception:
        logger.debug("could not sample the wire format %s", name, exc_info=True)
        events = []
    if fmt.media_type != "text/event-stream" or not events:
        return {
            "description": description or f"A stream ({name}).",
            "content": {fmt.media_type: {"schema": {"type": "string"}}},
        }
    variants = _variants(events)
    titles = [title for title, _ in variants]
    return {
        "description": description
        or f"Server-sent events ({name}): {', '.join(dict.fromkeys(titles))}.",
        "content": {
            "text/event-stream": {
                "schema": {"type": "string", "format": "event-stream"},
                "itemSchema": {"oneOf": [schema for _, schema in variants]},
            }
        },
    }


def _sample_events(fmt: WireFormat) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    out: list[ServerSentEvent] = []
    for items, error in ((_SAMPLE, None), (["Hel"], ProviderError("Rate limit", "rate_limit"))):
        engine = StreamEngine(fmt)
        chunks = [engine.start(), *(engine.feed(item) for item in items)]
        chunks.append(engine.close("error" if error else "completed", error))
        for item in decoder.feed(b"".join(chunks)):
            if type(item) is ServerSentEvent:
                out.append(item)
    return out


def _variants(events: list[ServerSentEvent]) -> list[tuple[str, dict[str, Any]]]:
    """One item schema per kind of event: its name, and its data's ``type`` for JSON data
    that has one (TypedJSONFormat, the AI SDK), or whether it is JSON at all."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for event in events:
        name = event.event or "message"
        try:
            data: Any = json.loads(event.data)
        except ValueError:
            groups.setdefault((name, "text"), []).append(event.data)
            continue
        kind = data.get("type") if isinstance(data, dict) else None
        key = (name, kind if isinstance(kind, str) else "json")
        groups.setdefault(key, []).append(data)
    variants = []
    for (name, kind), samples in groups.items():
        if kind == "text":
            values = list(dict.fromkeys(samples))
            data_schema: dict[str, Any] = (
                {"type": "string", "const": values[0]}
                if len(values) == 1 and len(values[0]) < 40
                else {"type": "string", "examples": values[:3]}
            )
            title = values[0] if name == "message" and len(values) == 1 else name
        else:
            data_schema = {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": _merge_schema(samples),
            }
            title = name if kind == "json" else kind if name == "message" else f"{name}: {kind}"
        properties: dict[str, Any] = {"data": data_schema}
        required = ["data"]
        if name != "message":
            properties["event"] = {"type": "string", "const": name}
            required.append("event")
        properties["id"] = {"type": "string"}
        variants.append(
            (
                title,
                {"title": title, "type": "object", "required": required, "properties": properties},
            )
        )
    return variants


def _merge_schema(samples: list[Any]) -> dict[str, Any]:
    """A JSON schema that every sample fits, from the values seen (``{}`` where unknown)."""
    types = {_json_type(s) for s in samples}
    schema: dict[str, Any] = {}
    concrete = sorted(types - {"null"})
    if concrete:
        schema["type"] = concrete[0] if len(types) == 1 else [*concrete, *(types & {"null"})]
    if "object" in types:
        objects = [s for s in samples if isinstance(s, dict)]
        keys = list(dict.fromkeys(k for o in objects for k in o))
        schema["properties"] = {k: _merge_schema([o[k] for o in objects if k in o]) for k in keys}
        required = [k for k in keys if all(k in o for o in objects)]
        if required:
            schema["required"] = required
        kinds = {o.get("type") for o in objects}
        if len(kinds) == 1 and isinstance(next(iter(kinds)), str):
            schema["properties"]["type"] = {"type": "string", "const": next(iter(kinds))}
    if "array" in types:
        items = [i for s in samples if isinstance(s, list) for i in s]
        schema["items"] = _merge_schema(items) if items else {}
    return schema


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    for python, name in _JSON_TYPES:
        if isinstance(value, python):
            return name
    return "string"
