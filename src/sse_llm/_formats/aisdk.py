"""The Vercel AI SDK UI message stream protocol, v1."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from .._model import FinishReason, LLMEvent, ReasoningDelta, ToolCall, ToolCallDelta
from .._result import StreamResult
from .base import FormatWriter, Units, WriterBase, data_event, json_string
from .typed_json import DONE

__all__ = ["AISDKFormat"]

# The AI SDK's finishReason enum, the values every UI message stream reader (ai 5, 6 and 7)
# accepts: ai/src/ui-message-stream/ui-message-chunks.ts.
_AISDK_FINISH: dict[FinishReason, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "content_filter": "content-filter",
    "error": "error",
    "other": "other",
    "pause": "other",  # a paused turn: the enum has no value for it
}
_INVALID_ARGUMENTS = "The model's tool call arguments are not valid JSON."
_START_STEP = b'data: {"type":"start-step"}\n\n'
_FINISH_STEP = b'data: {"type":"finish-step"}\n\n'


class _ToolState:
    __slots__ = ("buffered", "id", "name", "started")

    def __init__(self, id: str, name: str) -> None:
        self.id = id
        self.name = name
        self.started = False
        self.buffered: list[str] = []  # fragments that came before the tool's name


class _AISDKWriter(WriterBase):
    __slots__ = ("_message_id", "_open", "_parts", "_text_prefix", "_tools", "_usage_metadata")

    def __init__(self, usage_metadata: bool) -> None:
        self._usage_metadata = usage_metadata
        self._message_id = f"msg-{uuid.uuid4().hex}"
        self._parts = 0  # part ids are unique within the message
        self._open: tuple[str, str] | None = None  # ("text" | "reasoning", id) of the open part
        self._text_prefix: str | None = None  # set while a text part is open: the hot path
        self._tools: dict[int, _ToolState] = {}

    def _close(self, out: list[bytes]) -> None:
        """``text-end`` / ``reasoning-end`` for the open part, if any."""
        if self._open is None:
            return
        kind, part_id = self._open
        self._open = None
        self._text_prefix = None
        out.append(f'data: {{"type":"{kind}-end","id":"{part_id}"}}\n\n'.encode())

    def _begin(self, kind: str, out: list[bytes]) -> str:
        """Close the open part, start a ``kind`` part; returns its id."""
        self._close(out)
        part_id = f"{kind}-{self._parts}"
        self._parts += 1
        self._open = (kind, part_id)
        if kind == "text":
            self._text_prefix = f'data: {{"type":"text-delta","id":"{part_id}","delta":'
        out.append(f'data: {{"type":"{kind}-start","id":"{part_id}"}}\n\n'.encode())
        return part_id

    def start(self) -> Units:
        return (data_event({"type": "start", "messageId": self._message_id}), _START_STEP)

    def text(self, text: str) -> Units:
        prefix = self._text_prefix
        if prefix is not None:
            return (f"{prefix}{json_string(text)}}}\n\n".encode(),)
        out: list[bytes] = []
        self._begin("text", out)
        out.append(f"{self._text_prefix}{json_string(text)}}}\n\n".encode())
        return out

    def event(self, event: LLMEvent) -> Units:
        out: list[bytes] = []
        match event:
            case ReasoningDelta(text=text):
                if self._open is not None and self._open[0] == "reasoning":
                    part_id = self._open[1]
                else:
                    part_id = self._begin("reasoning", out)
                head = f'data: {{"type":"reasoning-delta","id":"{part_id}","delta":'
                out.append(f"{head}{json_string(text)}}}\n\n".encode())
            case ToolCallDelta():
                self._tool_fragment(event, out)
            case ToolCall():
                self._tool_call(event, out)
        # Finish and Usage are reported by end().
        return out

    def _tool_fragment(self, event: ToolCallDelta, out: list[bytes]) -> None:
        state = self._tools.get(event.index)
        if state is None:
            state = self._tools[event.index] = _ToolState(event.id, event.name)
        state.id = state.id or event.id
        state.name = state.name or event.name
        if not state.started:
            if not state.name:
                # tool-input-start needs the tool's name: hold the fragments until it comes.
                state.buffered.append(event.arguments)
                return
            self._tool_start(state, out)
            fragment = "".join([*state.buffered, event.arguments])
            state.buffered.clear()
        else:
            fragment = event.arguments
        if fragment:
            delta = {"type": "tool-input-delta", "toolCallId": state.id, "inputTextDelta": fragment}
            out.append(data_event(delta))

    def _tool_start(self, state: _ToolState, out: list[bytes]) -> None:
        state.started = True
        if not state.id:
            state.id = f"call-{uuid.uuid4().hex}"  # Gemini gives none; the AI SDK needs one
        self._close(out)
        start = {"type": "tool-input-start", "toolCallId": state.id, "toolName": state.name}
        out.append(data_event(start))

    def _tool_call(self, event: ToolCall, out: list[bytes]) -> None:
        state = self._tools.pop(event.index, None)
        if state is None:
            state = _ToolState(event.id, event.name)
        state.id = state.id or event.id
        state.name = state.name or event.name
        if not state.started:
            self._tool_start(state, out)
        part: dict[str, Any] = {
            "type": "tool-input-available",
            "toolCallId": state.id,
            "toolName": state.name,
        }
        try:
            part["input"] = json.loads(event.arguments) if event.arguments.strip() else {}
        except ValueError:
            # What the AI SDK's own streamText sends for unparsable input.
            part["type"] = "tool-input-error"
            part["input"] = event.arguments
            part["errorText"] = _INVALID_ARGUMENTS
        out.append(data_event(part))

    def error(self, message: str, code: str | None) -> Units:
        out: list[bytes] = []
        self._close(out)
        out.append(data_event({"type": "error", "errorText": message}))
        return out

    def end(self, result: StreamResult) -> Units:
        out: list[bytes] = []
        self._close(out)
        out.append(_FINISH_STEP)
        finish: dict[str, Any] = {"type": "finish"}
        if result.reason != "completed":
            finish["finishReason"] = "error"
        elif result.finish is not None:
            finish["finishReason"] = _AISDK_FINISH[result.finish.reason]
        if self._usage_metadata and result.usage is not None:
            finish["messageMetadata"] = {"usage": result.usage.as_dict()}
        out.append(data_event(finish))
        out.append(DONE)
        return out


class AISDKFormat:
    """The Vercel AI SDK UI message stream protocol, v1 (AI SDK 5 and later).

    ``useChat`` (with the default ``DefaultChatTransport``) and ``readUIMessageStream`` read
    it. Response header ``x-vercel-ai-ui-message-stream: v1``; each part is
    ``data: <JSON>``; the stream ends with ``data: [DONE]``::

        {"type":"start","messageId":"msg-<hex>"}   {"type":"start-step"}
        {"type":"reasoning-start","id":"reasoning-0"}  {"type":"reasoning-delta",…}  …-end
        {"type":"text-start","id":"text-1"}  {"type":"text-delta","id":"text-1","delta":"Hi"}
        {"type":"text-end","id":"text-1"}
        {"type":"tool-input-start","toolCallId":"call_1","toolName":"weather"}
        {"type":"tool-input-delta","toolCallId":"call_1","inputTextDelta":"{\\"city\\""}
        {"type":"tool-input-available","toolCallId":"call_1","toolName":"weather",
         "input":{"city":"Paris"}}
        {"type":"finish-step"}  {"type":"finish","finishReason":"stop"}

    A text or reasoning part is closed when another kind of part begins, so the reader's
    message gets its parts in the order the model produced them. Tool call arguments that are
    not valid JSON end as ``tool-input-error`` (the AI SDK's own behaviour). An error is
    ``{"type":"error","errorText":"..."}`` followed by ``finish`` with ``finishReason:
    "error"``. Finish reasons map to the AI SDK's enum (``tool_calls`` -> ``tool-calls``,
    ``content_filter`` -> ``content-filter``). Source: ``vercel/ai``
    ``packages/ai/src/ui-message-stream/ui-message-chunks.ts`` and the "Stream Protocols" docs
    page; checked with the ``ai`` package's ``readUIMessageStream`` (``tests/node``).

    Args:
        usage_metadata: send token usage as the message's metadata,
            ``finish.messageMetadata = {"usage": {"input_tokens": 9, ...}}`` (it becomes
            ``message.metadata`` on the client). Off by default: metadata belongs to the app.
    """

    media_type = "text/event-stream"
    headers: Mapping[str, str] = {"x-vercel-ai-ui-message-stream": "v1"}
    keepalive = b":\n"

    def __init__(self, *, usage_metadata: bool = False) -> None:
        self.usage_metadata = usage_metadata

    def writer(self) -> FormatWriter:
        return _AISDKWriter(self.usage_metadata)
