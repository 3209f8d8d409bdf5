"""OpenAI Chat Completions streaming chunks, so OpenAI clients read the stream."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from .._model import (
    Citation,
    Finish,
    FinishReason,
    LLMEvent,
    ReasoningDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .._result import StreamResult
from .base import NOTHING, FormatWriter, Units, WriterBase, data_event, dumps, json_string
from .typed_json import DONE

__all__ = ["OpenAIChatFormat"]

# OpenAI's finish_reason values; ours that it lacks become "stop" (clients type the field as
# this enum, e.g. the openai SDK's Literal, async-openai's Rust enum).
_OPENAI_FINISH: dict[FinishReason, str] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "error": "stop",
    "other": "stop",
    # A paused turn (Anthropic pause_turn) is not a complete answer: "length" is OpenAI's
    # value for "cut short, may be continued", so a client does not take it as done.
    "pause": "length",
}


def _new_id() -> str:
    return uuid.uuid4().hex


def _openai_usage(usage: Usage) -> dict[str, Any]:
    """OpenAI's ``CompletionUsage``: its three counts are required (a strict client fails on
    a chunk without one), so a count the provider did not give is worked out or 0."""
    prompt, completion, total = usage.input_tokens, usage.output_tokens, usage.total_tokens
    if completion is None and prompt is not None and total is not None:
        completion = total - prompt  # Gemini without candidatesTokenCount: all thinking
    prompt, completion = prompt or 0, completion or 0
    out: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if total is not None else prompt + completion,
    }
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    prompt_details: dict[str, int] = {}
    if usage.cached_input_tokens is not None:
        prompt_details["cached_tokens"] = usage.cached_input_tokens
    if usage.cache_write_tokens is not None:
        prompt_details["cache_write_tokens"] = usage.cache_write_tokens  # OpenRouter's name
    if prompt_details:
        out["prompt_tokens_details"] = prompt_details
    return out


class _OpenAIChatWriter(WriterBase):
    __slots__ = ("_annotations", "_calls", "_head", "_include_usage", "_nameless", "_text_prefix")

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
        # Fragments of calls whose name has not come yet: OpenAI's first delta carries it.
        self._nameless: dict[int, list[str]] = {}
        self._annotations = 0  # url_citation annotations sent so far

    def _chunk(self, delta: Mapping[str, Any], finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return f'data: {self._head},"choices":[{dumps(choice)}]}}\n\n'.encode()

    def start(self) -> Units:
        return (self._chunk({"role": "assistant", "content": ""}),)

    def text(self, text: str) -> Units:
        return (f'{self._text_prefix}{json_string(text)}}},"finish_reason":null}}]}}\n\n'.encode(),)

    def _announce(self, source_index: int, id: str, name: str, arguments: str) -> bytes:
        """The first delta of a call: its id, type and name (OpenAI's shape)."""
        index = self._calls[source_index] = len(self._calls)
        call = {
            "index": index,
            "id": id or f"call_{_new_id()}",
            "type": "function",
            "function": {"name": name, "arguments": arguments},
        }
        return self._chunk({"tool_calls": [call]})

    def event(self, event: LLMEvent) -> Units:
        match event:
            case ReasoningDelta(text=text):
                return (self._chunk({"reasoning_content": text}),)
            case ToolCallDelta(index=source_index, arguments=arguments):
                index = self._calls.get(source_index)
                if index is None:
                    held = self._nameless.pop(source_index, [])
                    if not event.name:
                        self._nameless[source_index] = [*held, arguments]
                        return NOTHING
                    whole = "".join([*held, arguments])
                    return (self._announce(source_index, event.id, event.name, whole),)
                if not arguments:
                    return NOTHING
                call = {"index": index, "function": {"arguments": arguments}}
                return (self._chunk({"tool_calls": [call]}),)
            case ToolCall(index=source_index):
                if source_index in self._calls:
                    return NOTHING  # already streamed fragment by fragment
                self._nameless.pop(source_index, None)  # the whole call is here
                # A provider that sends calls whole (Gemini): one delta with all of it.
                return (self._announce(source_index, event.id, event.name, event.arguments),)
            case Citation(kind="url", url=str(url)):
                return (self._chunk({"annotations": [self._annotation(event, url)]}),)
        # Finish and Usage are sent by end(), in OpenAI's order: finish chunk, usage chunk.
        # Chat Completions has no provider-run tools and no document citations: ToolActivity
        # and non-URL citations have no representation and are dropped.
        return NOTHING

    def _annotation(self, citation: Citation, url: str) -> dict[str, Any]:
        """OpenAI's ``url_citation`` annotation, plus its position ``index`` in the message."""
        start, end = citation.start, citation.end
        if start is None or end is None:
            start = end = 0  # OpenRouter's "not located"; OpenAI's schema requires both ints
        index = self._annotations
        self._annotations += 1
        return {
            "type": "url_citation",
            "url_citation": {
                "url": url,
                "title": citation.title or "",
                "start_index": start,
                "end_index": end,
            },
            "index": index,
        }

    def error(self, message: str, code: str | None) -> Units:
        # What OpenAI sends mid-stream; the openai SDK raises APIError(message) on it.
        error_type = "server_error" if code in (None, "internal_error") else code
        return (data_event({"error": {"message": message, "type": error_type, "code": code}}),)

    def end(self, result: StreamResult) -> Units:
        if result.reason != "completed":
            return NOTHING  # after the error object the stream just ends, as OpenAI's do
        # Fragments of a call whose name never came (a source with no ToolCall at the end):
        # the call as the source gave it, not lost.
        out = [
            self._announce(index, "", "", "".join(parts))
            for index, parts in sorted(self._nameless.items())
        ]
        self._nameless.clear()
        finish: Finish | None = result.finish
        if finish is not None:
            out.append(self._chunk({}, _OPENAI_FINISH[finish.reason]))
        if self._include_usage and result.usage is not None:
            usage = dumps(_openai_usage(result.usage))
            out.append(f'data: {self._head},"choices":[],"usage":{usage}}}\n\n'.encode())
        out.append(DONE)
        return out


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
        data: {… "delta":{"annotations":[{"type":"url_citation","url_citation":{
               "url":"https://…","title":"…","start_index":0,"end_index":42},"index":0}]} …}
        data: {… "choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}
        data: {… "choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,
               "total_tokens":21}}                                     (when usage is known)
        data: [DONE]

    An error is ``data: {"error": {"message": "...", "type": "...", "code": ...}}`` and the
    stream ends (no ``[DONE]``), which the openai SDK raises as ``APIError(message)``; ``type``
    is ``server_error`` for sse-llm's internal error, else the code (the provider's, or
    sse-llm's ``shutdown``). Tool calls are
    renumbered 0, 1 … in arrival order; a call id the provider did not give is generated
    (``call_<hex>``). Finish reasons OpenAI does not have (``error``, ``other``) are sent as
    ``stop``, and a paused turn (``pause``) as ``length``. Source: OpenAI API reference, "The
    chat completion chunk object".

    Sources: each URL :class:`~sse_llm.Citation` is one chunk whose delta carries it as a
    ``url_citation`` annotation, the shape of OpenAI's ``message.annotations`` (web search
    models; OpenRouter streams them the same way, one per chunk, in ``delta.annotations``).
    ``start_index`` / ``end_index`` are character offsets into the message content (the whole
    answer text); a citation without a span is sent with both ``0`` (OpenRouter's value for "not
    located"), a missing title as ``""``. Each annotation also carries its position
    ``index`` (0, 1 …), as tool call deltas do, so an accumulating client such as the openai
    SDK's ``chat.completions.stream()`` merges them into ``message.annotations`` (without it
    the SDK's accumulator fails on a second annotation delta). The field is not in the SDK's
    ``ChoiceDelta`` type: read it as ``delta.model_extra["annotations"]``. Chat Completions has
    no other citation kind and no provider-run tools: document and file citations and every
    :class:`~sse_llm.ToolActivity` are dropped (use another format to show them).

    Args:
        model: the ``model`` field of every chunk (default ``"sse-llm"``).
        include_usage: send the usage chunk (``choices: []``) when usage is known, as OpenAI
            does with ``stream_options={"include_usage": true}``.
    """

    media_type = "text/event-stream"
    headers: Mapping[str, str] = {}
    keepalive = b":\n"

    def __init__(self, model: str = "sse-llm", *, include_usage: bool = True) -> None:
        self.model = model
        self.include_usage = include_usage

    def writer(self) -> FormatWriter:
        return _OpenAIChatWriter(self.model, self.include_usage)
