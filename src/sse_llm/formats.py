"""Every wire format sse-llm can write, for ``format=`` of any response or adapter.

- :class:`EventsFormat` (the default): named SSE events (``delta``, ``reasoning``,
  ``tool_call``, ``done``, ``error``) with JSON data.
- :class:`TextFormat`: unnamed SSE events whose data is the text itself.
- :class:`JSONEventsFormat`: one JSON object per ``data:`` line, its kind in ``type``, then
  ``data: [DONE]`` (the shape of the Flask / Databricks streaming guides).
- :class:`OpenAIChatFormat`: OpenAI Chat Completions chunks, so any OpenAI SDK or
  OpenAI-compatible client reads the stream (sse-llm as an OpenAI-compatible proxy).
- :class:`AISDKFormat`: the Vercel AI SDK UI message stream v1 (``useChat``,
  ``readUIMessageStream``).

A format is a stateless description shared by all requests; each stream gets a fresh renderer
from ``format.renderer()`` that holds the stream's state (ids, open text parts). Renderers
return ready-to-send UTF-8 bytes, ``b""`` when an event has no representation in the format.
JSON text is written with non-ASCII characters as is; line breaks inside strings are JSON
escapes, so every event is a single ``data:`` line whatever the text.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any

from ._formats import EventsFormat, Renderer, TextFormat, WireFormat, dumps, usage_json
from ._model import (
    Finish,
    FinishReason,
    LLMEvent,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._result import StreamResult

__all__ = [
    "AISDKFormat",
    "EventsFormat",
    "JSONEventsFormat",
    "OpenAIChatFormat",
    "Renderer",
    "TextFormat",
    "WireFormat",
]

_json_string: Any = encode_basestring  # C-accelerated JSON string literal, non-ASCII kept
_DONE = b"data: [DONE]\n\n"


def _data(payload: Any) -> bytes:
    """One unnamed SSE event carrying ``payload`` as compact JSON (always a single line)."""
    return f"data: {dumps(payload)}\n\n".encode()


def _new_id() -> str:
    return uuid.uuid4().hex


# ---------------------------------------------------------------------------------------------
# JSON events


class _JSONEventsRenderer:
    __slots__ = ("_message_id", "_session_id")

    def __init__(self, session_id: str | None) -> None:
        self._session_id = session_id if session_id is not None else _new_id()
        self._message_id = _new_id()

    def start(self) -> bytes:
        return _data(
            {"type": "session", "session_id": self._session_id, "message_id": self._message_id}
        )

    def text(self, text: str) -> bytes:
        return f'data: {{"type":"delta","delta":{_json_string(text)}}}\n\n'.encode()

    def event(self, event: LLMEvent) -> bytes:
        kind = type(event)
        if kind is TextDelta:
            return self.text(event.text)  # type: ignore[union-attr]
        if kind is ReasoningDelta:
            text = _json_string(event.text)  # type: ignore[union-attr]
            return f'data: {{"type":"reasoning","delta":{text}}}\n\n'.encode()
        if kind is ToolCall:
            assert isinstance(event, ToolCall)
            return _data(
                {
                    "type": "tool_call",
                    "index": event.index,
                    "id": event.id,
                    "name": event.name,
                    "arguments": event.arguments,
                }
            )
        # Fragments are sent whole as ``tool_call``; Finish and Usage go into ``done``.
        return b""

    def error(self, message: str, code: str | None) -> bytes:
        return _data({"type": "error", "message": message, "code": code})

    def end(self, result: StreamResult) -> bytes:
        if result.reason != "completed":
            # After ``error`` (also at shutdown): the sentinel still tells the client it is over.
            return _DONE
        finish = result.finish
        done = {
            "type": "done",
            "finish_reason": finish.reason if finish else None,
            "raw_finish_reason": finish.raw_reason if finish else None,
            "usage": usage_json(result.usage),
        }
        return _data(done) + _DONE


class JSONEventsFormat:
    """Unnamed SSE events, each a JSON object whose ``type`` says what it is.

    =================  ===========================================================================
    ``session``        first: ``{"type": "session", "session_id": "<hex>", "message_id": "<hex>"}``
    ``delta``          ``{"type": "delta", "delta": "text"}``: append to the answer
    ``reasoning``      ``{"type": "reasoning", "delta": "text"}``: append to the reasoning
    ``tool_call``      ``{"type": "tool_call", "index": 0, "id": "call_1", "name": "f",
                       "arguments": "{...}"}``: a complete call
    ``done``           ``{"type": "done", "finish_reason": "stop", "raw_finish_reason": "stop",
                       "usage": {"input_tokens": 9, ...} | null}``
    ``error``          ``{"type": "error", "message": "...", "code": "..." | null}``
    =================  ===========================================================================

    The stream always ends with ``data: [DONE]`` after ``done`` or ``error``, the shape of the
    Flask/Databricks streaming guides and of OpenAI's streams, so a client loop can be
    ``for line in lines: if data == "[DONE]": break; event = json.loads(data)``. Readable by
    ``EventSource.onmessage`` too (every event is unnamed).

    Args:
        session_id: the ``session_id`` sent first (a conversation id, say); a fresh UUID4 hex
            per stream when ``None``. ``message_id`` is always a fresh UUID4 hex.
    """

    media_type = "text/event-stream"
    headers: Mapping[str, str] = {}
    heartbeat = b":\n"

    def __init__(self, *, session_id: str | None = None) -> None:
        self.session_id = session_id

    def renderer(self) -> Renderer:
        return _JSONEventsRenderer(self.session_id)


# ---------------------------------------------------------------------------------------------
# OpenAI Chat Completions chunks

# OpenAI's finish_reason values; ours that it lacks become "stop" (clients type the field as
# this enum, e.g. the openai SDK's Literal, async-openai's Rust enum).
_OPENAI_FINISH: dict[FinishReason, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "error": "stop",
    "other": "stop",
}


def _openai_usage(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if usage.input_tokens is not None:
        out["prompt_tokens"] = usage.input_tokens
    if usage.output_tokens is not None:
        out["completion_tokens"] = usage.output_tokens
    total = usage.total_tokens
    if total is None and usage.input_tokens is not None and usage.output_tokens is not None:
        total = usage.input_tokens + usage.output_tokens
    if total is not None:
        out["total_tokens"] = total
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


class _OpenAIChatRenderer:
    __slots__ = ("_calls", "_head", "_include_usage", "_text_prefix")

    def __init__(self, model: str, include_usage: bool) -> None:
        self._include_usage = include_usage
        # Every chunk of a completion repeats the same id, created and model (OpenAI API
        # reference, "The chat completion chunk object").
        head = dumps(
            {
                "id": f"chatcmpl-{_new_id()}",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
            }
        )
        self._head = head[:-1]  # without the closing brace
        self._text_prefix = f'data: {self._head},"choices":[{{"index":0,"delta":{{"content":'
        self._calls: dict[int, int] = {}  # source index -> our 0-based OpenAI index

    def _chunk(self, delta: Mapping[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return f'data: {self._head},"choices":[{dumps(choice)}]}}\n\n'.encode()

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def text(self, text: str) -> bytes:
        return f'{self._text_prefix}{_json_string(text)}}},"finish_reason":null}}]}}\n\n'.encode()

    def event(self, event: LLMEvent) -> bytes:
        kind = type(event)
        if kind is TextDelta:
            return self.text(event.text)  # type: ignore[union-attr]
        if kind is ReasoningDelta:
            return self._chunk({"reasoning_content": event.text})  # type: ignore[union-attr]
        if kind is ToolCallDelta:
            assert isinstance(event, ToolCallDelta)
            index = self._calls.get(event.index)
            if index is None:
                # The first fragment announces the call: id, type and name (OpenAI's shape).
                index = self._calls[event.index] = len(self._calls)
                call = {
                    "index": index,
                    "id": event.id or f"call_{_new_id()}",
                    "type": "function",
                    "function": {"name": event.name, "arguments": event.arguments},
                }
            elif event.arguments:
                call = {"index": index, "function": {"arguments": event.arguments}}
            else:
                return b""
            return self._chunk({"tool_calls": [call]})
        if kind is ToolCall:
            assert isinstance(event, ToolCall)
            if event.index in self._calls:
                return b""  # already streamed fragment by fragment
            # A provider that sends calls whole (Gemini): one delta with all of it.
            index = self._calls[event.index] = len(self._calls)
            call = {
                "index": index,
                "id": event.id or f"call_{_new_id()}",
                "type": "function",
                "function": {"name": event.name, "arguments": event.arguments},
            }
            return self._chunk({"tool_calls": [call]})
        # Finish and Usage are sent by end(), in OpenAI's order: finish chunk, usage chunk.
        return b""

    def error(self, message: str, code: str | None) -> bytes:
        # What OpenAI sends mid-stream; the openai SDK raises APIError(message) on it.
        error_type = "server_error" if code in (None, "internal_error") else code
        return _data({"error": {"message": message, "type": error_type, "code": code}})

    def end(self, result: StreamResult) -> bytes:
        if result.reason != "completed":
            return b""  # after the error object the stream just ends, as OpenAI's do
        out = b""
        finish: Finish | None = result.finish
        if finish is not None:
            out += self._chunk({}, _OPENAI_FINISH[finish.reason])
        if self._include_usage and result.usage is not None:
            usage = _openai_usage(result.usage)
            out += f'data: {self._head},"choices":[],"usage":{dumps(usage)}}}\n\n'.encode()
        return out + _DONE


class OpenAIChatFormat:
    """OpenAI Chat Completions streaming chunks, so OpenAI clients read the stream.

    The stream any OpenAI SDK gets from ``chat.completions.create(stream=True)``::

        data: {"id":"chatcmpl-…","object":"chat.completion.chunk","created":1700000000,
               "model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},
               "finish_reason":null}]}
        data: {… "choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}
        data: {… "delta":{"reasoning_content":"…"} …}                 (DeepSeek's field)
        data: {… "delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function",
               "function":{"name":"f","arguments":""}}]} …}            (then argument fragments)
        data: {… "choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}
        data: {… "choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,
               "total_tokens":21}}                                     (when usage is known)
        data: [DONE]

    An error is ``data: {"error": {"message": "...", "type": "...", "code": ...}}`` and the
    stream ends (no ``[DONE]``), which the openai SDK raises as ``APIError(message)``; ``type``
    is ``server_error`` for sse-llm's own safe error, else the provider's code. Tool calls are
    renumbered 0, 1 … in arrival order; a call id the provider did not give is generated
    (``call_<hex>``). Finish reasons OpenAI does not have (``error``, ``other``) are sent as
    ``stop``. Source: OpenAI API reference, "The chat completion chunk object".

    Args:
        model: the ``model`` field of every chunk.
        include_usage: send the usage chunk (``choices: []``) when usage is known, as OpenAI
            does with ``stream_options={"include_usage": true}``.
    """

    media_type = "text/event-stream"
    headers: Mapping[str, str] = {}
    heartbeat = b":\n"

    def __init__(self, model: str = "sse-llm", *, include_usage: bool = True) -> None:
        self.model = model
        self.include_usage = include_usage

    def renderer(self) -> Renderer:
        return _OpenAIChatRenderer(self.model, self.include_usage)


# ---------------------------------------------------------------------------------------------
# Vercel AI SDK UI message stream

# The AI SDK's finishReason enum, the values every UI message stream reader (ai 5, 6 and 7)
# accepts: ai/src/ui-message-stream/ui-message-chunks.ts.
_AISDK_FINISH: dict[FinishReason, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool-calls",
    "content_filter": "content-filter",
    "error": "error",
    "other": "other",
}
_INVALID_ARGUMENTS = "The model's tool call arguments are not valid JSON."


class _ToolState:
    __slots__ = ("buffered", "id", "name", "started")

    def __init__(self, id: str, name: str) -> None:
        self.id = id
        self.name = name
        self.started = False
        self.buffered: list[str] = []  # fragments that came before the tool's name


class _AISDKRenderer:
    __slots__ = (
        "_message_id",
        "_open",
        "_parts",
        "_text_prefix",
        "_tools",
        "_usage_metadata",
    )

    def __init__(self, usage_metadata: bool) -> None:
        self._usage_metadata = usage_metadata
        self._message_id = f"msg-{_new_id()}"
        self._parts = 0  # part ids are unique within the message
        self._open: tuple[str, str] | None = None  # ("text" | "reasoning", id) of the open part
        self._text_prefix: str | None = None  # set while a text part is open: the hot path
        self._tools: dict[int, _ToolState] = {}

    def _close(self) -> str:
        """``text-end`` / ``reasoning-end`` for the open part, if any."""
        if self._open is None:
            return ""
        kind, part_id = self._open
        self._open = None
        self._text_prefix = None
        return f'data: {{"type":"{kind}-end","id":"{part_id}"}}\n\n'

    def _begin(self, kind: str) -> str:
        out = self._close()
        part_id = f"{kind}-{self._parts}"
        self._parts += 1
        self._open = (kind, part_id)
        if kind == "text":
            self._text_prefix = f'data: {{"type":"text-delta","id":"{part_id}","delta":'
        return out + f'data: {{"type":"{kind}-start","id":"{part_id}"}}\n\n'

    def start(self) -> bytes:
        start = {"type": "start", "messageId": self._message_id}
        return _data(start) + b'data: {"type":"start-step"}\n\n'

    def text(self, text: str) -> bytes:
        prefix = self._text_prefix
        if prefix is not None:
            return f"{prefix}{_json_string(text)}}}\n\n".encode()
        head = self._begin("text")
        return f"{head}{self._text_prefix}{_json_string(text)}}}\n\n".encode()

    def event(self, event: LLMEvent) -> bytes:
        kind = type(event)
        if kind is TextDelta:
            return self.text(event.text)  # type: ignore[union-attr]
        if kind is ReasoningDelta:
            head = "" if self._open is not None and self._open[0] == "reasoning" else None
            if head is None:
                head = self._begin("reasoning")
            assert self._open is not None
            delta = _json_string(event.text)  # type: ignore[union-attr]
            return (
                f'{head}data: {{"type":"reasoning-delta","id":"{self._open[1]}",'
                f'"delta":{delta}}}\n\n'
            ).encode()
        if kind is ToolCallDelta:
            assert isinstance(event, ToolCallDelta)
            return self._tool_fragment(event).encode()
        if kind is ToolCall:
            assert isinstance(event, ToolCall)
            return self._tool_call(event).encode()
        # Finish and Usage are reported by end().
        return b""

    def _tool_fragment(self, event: ToolCallDelta) -> str:
        state = self._tools.get(event.index)
        if state is None:
            state = self._tools[event.index] = _ToolState(event.id, event.name)
        state.id = state.id or event.id
        state.name = state.name or event.name
        out = ""
        if not state.started:
            if not state.name:
                # tool-input-start needs the tool's name: hold the fragments until it comes.
                state.buffered.append(event.arguments)
                return ""
            out += self._tool_start(state)
            fragment = "".join([*state.buffered, event.arguments])
            state.buffered.clear()
        else:
            fragment = event.arguments
        if fragment:
            out += _data(
                {"type": "tool-input-delta", "toolCallId": state.id, "inputTextDelta": fragment}
            ).decode()
        return out

    def _tool_start(self, state: _ToolState) -> str:
        state.started = True
        if not state.id:
            state.id = f"call-{_new_id()}"  # Gemini gives none; the AI SDK needs one
        start = {"type": "tool-input-start", "toolCallId": state.id, "toolName": state.name}
        return self._close() + _data(start).decode()

    def _tool_call(self, event: ToolCall) -> str:
        state = self._tools.pop(event.index, None)
        if state is None:
            state = _ToolState(event.id, event.name)
        state.id = state.id or event.id
        state.name = state.name or event.name
        out = "" if state.started else self._tool_start(state)
        try:
            arguments: Any = json.loads(event.arguments) if event.arguments.strip() else {}
        except ValueError:
            # What the AI SDK's own streamText sends for unparsable input.
            part = {
                "type": "tool-input-error",
                "toolCallId": state.id,
                "toolName": state.name,
                "input": event.arguments,
                "errorText": _INVALID_ARGUMENTS,
            }
        else:
            part = {
                "type": "tool-input-available",
                "toolCallId": state.id,
                "toolName": state.name,
                "input": arguments,
            }
        return out + _data(part).decode()

    def error(self, message: str, code: str | None) -> bytes:
        return (self._close() + _data({"type": "error", "errorText": message}).decode()).encode()

    def end(self, result: StreamResult) -> bytes:
        out = self._close().encode() + b'data: {"type":"finish-step"}\n\n'
        finish: dict[str, Any] = {"type": "finish"}
        if result.reason != "completed":
            finish["finishReason"] = "error"
        elif result.finish is not None:
            finish["finishReason"] = _AISDK_FINISH[result.finish.reason]
        if self._usage_metadata and result.usage is not None:
            finish["messageMetadata"] = {"usage": result.usage.as_dict()}
        return out + _data(finish) + _DONE


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
    heartbeat = b":\n"

    def __init__(self, *, usage_metadata: bool = False) -> None:
        self.usage_metadata = usage_metadata

    def renderer(self) -> Renderer:
        return _AISDKRenderer(self.usage_metadata)
