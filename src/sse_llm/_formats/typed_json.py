"""Unnamed SSE events, each a JSON object whose ``type`` says what it is, then ``[DONE]``."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from .._model import Citation, LLMEvent, ReasoningDelta, ToolActivity, ToolCall
from .._result import StreamResult
from .base import (
    NOTHING,
    FormatWriter,
    Units,
    WriterBase,
    activity_fields,
    data_event,
    done_fields,
    json_string,
    source_fields,
    tool_call_fields,
)

__all__ = ["DONE", "TypedJSONFormat"]

#: The sentinel event that ends OpenAI-shaped streams.
DONE = b"data: [DONE]\n\n"


class _TypedJSONWriter(WriterBase):
    __slots__ = ("_activity_input", "_message_id", "_session_id")

    def __init__(self, session_id: str | None, activity_input: bool) -> None:
        self._activity_input = activity_input
        self._session_id = session_id if session_id is not None else uuid.uuid4().hex
        self._message_id = uuid.uuid4().hex

    def start(self) -> Units:
        session = {
            "type": "session",
            "session_id": self._session_id,
            "message_id": self._message_id,
        }
        return (data_event(session),)

    def text(self, text: str) -> Units:
        return (f'data: {{"type":"delta","delta":{json_string(text)}}}\n\n'.encode(),)

    def event(self, event: LLMEvent) -> Units:
        match event:
            case ReasoningDelta(text=text):
                return (f'data: {{"type":"reasoning","delta":{json_string(text)}}}\n\n'.encode(),)
            case ToolCall() as call:
                return (data_event({"type": "tool_call", **tool_call_fields(call)}),)
            case Citation():
                return (data_event({"type": "source", **source_fields(event)}),)
            case ToolActivity():
                fields = activity_fields(event, self._activity_input)
                return (data_event({"type": "tool_activity", **fields}),)
        # Fragments are sent whole as ``tool_call``; Finish and Usage go into ``done``.
        return NOTHING

    def error(self, message: str, code: str | None) -> Units:
        return (data_event({"type": "error", "message": message, "code": code}),)

    def end(self, result: StreamResult) -> Units:
        if result.reason != "completed":
            # After ``error`` (also at shutdown): the sentinel still tells the client it is over.
            return (DONE,)
        return (data_event({"type": "done", **done_fields(result)}), DONE)


class TypedJSONFormat:
    """Unnamed SSE events, each a JSON object whose ``type`` says what it is (formerly
    ``JSONEventsFormat``).

    - ``session``: first: ``{"type": "session", "session_id": "<hex>", "message_id": "<hex>"}``
    - ``delta``: ``{"type": "delta", "delta": "text"}``: append to the answer
    - ``reasoning``: ``{"type": "reasoning", "delta": "text"}``: append to the reasoning
    - ``tool_call``: ``{"type": "tool_call", "index": 0, "id": "call_1", "name": "f", "arguments":
      "{...}"}``: a complete call, for the client to run
    - ``source``: ``{"type": "source", "kind": "url", "url": "https://...", "title": "...",
      "document_id": null, "container_id": null, "cited_text": null, "start": 0, "end": 42, "index":
      null}``: a source the answer cites
    - ``tool_activity``: ``{"type": "tool_activity", "id": "ws_1", "name": "web_search", "status":
      "started" | "finished" | "failed", "summary": "..."}``: a tool the provider runs itself
    - ``done``: ``{"type": "done", "finish_reason": "stop", "raw_finish_reason": "stop", "usage":
      {"input_tokens": 9, ...} | null}``
    - ``error``: ``{"type": "error", "message": "...", "code": "..." | null}``

    The stream always ends with ``data: [DONE]`` after ``done`` or ``error``, the shape of the
    Flask/Databricks streaming guides and of OpenAI's streams, so a client loop can be
    ``for line in lines: if data == "[DONE]": break; event = json.loads(data)``. Readable by
    ``EventSource.onmessage`` too (every event is unnamed).

    Args:
        session_id: the ``session_id`` sent first (a conversation id, say); a fresh UUID4 hex
            per stream when ``None``. ``message_id`` is always a fresh UUID4 hex.
        activity_input: also send a provider tool's arguments as the model wrote them in
            ``tool_activity``, ``"input": {"query": ...} | null`` (code to run can be long; off
            by default).
    """

    media_type = "text/event-stream"
    headers: Mapping[str, str] = {}
    keepalive = b":\n"

    def __init__(self, *, session_id: str | None = None, activity_input: bool = False) -> None:
        self.session_id = session_id
        self.activity_input = activity_input

    def writer(self) -> FormatWriter:
        return _TypedJSONWriter(self.session_id, self.activity_input)
