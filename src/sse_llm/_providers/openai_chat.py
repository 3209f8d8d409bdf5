"""OpenAI Chat Completions streams (``chat.completion.chunk``), and compatible providers.

Covers OpenAI, Azure OpenAI, Groq, DeepSeek, OpenRouter, Perplexity, Mistral, vLLM, Ollama's
and LM Studio's OpenAI endpoints. Source of the rules: OpenAI API reference, "The chat
completion chunk object" and "Web search" (``annotations``); Perplexity API reference, "Chat
Completions" (``citations``, ``search_results``); OpenRouter docs, "Web Search"
(``url_citation`` annotations); provider quirks as recorded in the test fixtures'
FORMATS.md.

Mapped:

- ``delta.content`` (a string, or Magistral's typed parts) -> :class:`TextDelta`; Mistral's
  ``reference`` parts (``reference_ids``: the documents a tool result supplied that the
  answer cites) -> one :class:`Citation` ``kind="document"`` per id (``document_id`` the id
  as text, no span), once each;
  ``delta.reasoning_content`` (DeepSeek) / ``delta.reasoning`` (Groq, OpenRouter) ->
  :class:`ReasoningDelta`;
- ``delta.refusal`` (a refusal under structured outputs) -> :class:`TextDelta`, as the
  Responses API's ``response.refusal.delta``: it is what the user should see;
- ``delta.tool_calls`` -> :class:`ToolCallDelta` / :class:`ToolCall` (see
  :class:`Normalizer`); the legacy ``delta.function_call`` (requests with ``functions=``,
  finish reason ``function_call``) as the call at index 0, with no id;
- ``url_citation`` annotations (``delta.annotations``, or ``message.annotations`` of
  providers that send the accumulated message) -> :class:`Citation` ``kind="url"`` with
  ``start_index`` / ``end_index`` as the span (characters of the message text, which is the
  answer text); OpenRouter's ``0, 0`` means "not located" and gives no span. Its page
  extract (``content``) stays in ``raw``;
- Perplexity's top-level ``citations`` (URLs, numbered ``[1]``, ``[2]`` ... in the text) and
  ``search_results`` (title, URL, date), repeated on every chunk -> one :class:`Citation`
  per source with ``index`` = its number and the title from ``search_results``; without
  ``citations``, ``search_results`` alone are the numbered list. Perplexity gives no spans;
- ``finish_reason`` -> :class:`Finish`; ``usage`` (or Groq's ``x_groq.usage``) ->
  :class:`Usage` at the end: ``prompt_tokens``, ``completion_tokens``, ``total_tokens``,
  ``completion_tokens_details.reasoning_tokens``, ``prompt_tokens_details.cached_tokens``
  (DeepSeek: ``prompt_cache_hit_tokens``), OpenRouter's
  ``prompt_tokens_details.cache_write_tokens``;
- a chunk with a top-level ``error`` (OpenRouter) -> :class:`ErrorEvent`.

Works with ``chat.completions.create(stream=True)`` and with the ``openai`` SDK's
``chat.completions.stream()`` helper (:class:`HelperNormalizer`): the chunk of each of its
``chunk`` events is read, and its derived events (``content.delta``,
``tool_calls.function.arguments.done`` ...), which repeat the chunks, are ignored.

Several choices (``n > 1``): see :class:`Normalizer`. Chat Completions has no provider-run
tool events: OpenRouter reports its web search only as a count
(``usage.server_tool_use_details.web_search_requests``), so no :class:`ToolActivity`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._exceptions import ProviderError
from .._model import (
    Citation,
    ErrorEvent,
    Finish,
    FinishReason,
    LLMEvent,
    ReasoningDelta,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._common import (
    as_mapping,
    error_fields,
    int_or_none,
    merge_counts,
    multiple_choices_error,
    nested_int,
    sdk_class,
    span,
    str_or_none,
)

_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "length": "length",
    "model_length": "length",  # Mistral
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    "error": "error",
}


def finish(raw: str) -> Finish:
    """A :class:`Finish` from a Chat Completions ``finish_reason``."""
    return Finish(_FINISH.get(raw, "other"), raw)


def usage(raw: Mapping[str, Any]) -> Usage:
    """A :class:`Usage` from a Chat Completions ``usage`` object (see the module docstring)."""
    cached = nested_int(raw, "prompt_tokens_details", "cached_tokens")
    if cached is None:
        cached = int_or_none(raw.get("prompt_cache_hit_tokens"))  # DeepSeek
    return Usage(
        input_tokens=int_or_none(raw.get("prompt_tokens")),
        output_tokens=int_or_none(raw.get("completion_tokens")),
        total_tokens=int_or_none(raw.get("total_tokens")),
        reasoning_tokens=nested_int(raw, "completion_tokens_details", "reasoning_tokens"),
        cached_input_tokens=cached,
        cache_write_tokens=nested_int(raw, "prompt_tokens_details", "cache_write_tokens"),
        raw=raw,
    )


def matches(item: Any) -> bool:
    """An OpenAI SDK ``ChatCompletionChunk`` or its JSON mapping.

    Perplexity labels its chunks ``"object": "chat.completion"`` and Azure's first chunk has
    ``"object": ""`` (with ``prompt_filter_results``), so any ``chat.completion*`` or empty
    object with ``choices`` is accepted.
    """
    if type(item).__name__ == "ChatCompletionChunk":
        return True
    if isinstance(item, Mapping):
        kind, has_choices = item.get("object"), "choices" in item
    else:
        kind, has_choices = getattr(item, "object", None), hasattr(item, "choices")
    return (
        has_choices and isinstance(kind, str) and (not kind or kind.startswith("chat.completion"))
    )


def matches_helper_event(item: Any) -> bool:
    """The first event of the ``openai`` SDK's ``chat.completions.stream()`` helper: a
    ``ChunkEvent`` (``type="chunk"``), which carries the raw chunk in ``.chunk``."""
    return type(item).__name__ == "ChunkEvent" and matches(getattr(item, "chunk", None))


def translate(exc: BaseException) -> ProviderError | None:
    """The provider's message from an ``openai`` SDK exception (in-stream or HTTP status).

    Only a JSON error body is the provider's own wording: for any other body the SDK's
    message is ``"Error code: 502 - <the body>"``, which may be a proxy's HTML page.
    """
    cls = sdk_class(exc, "openai")
    if cls is None:
        return None
    if cls.__name__ in ("APIConnectionError", "APITimeoutError"):
        return ProviderError("The model provider could not be reached.", None)
    if not hasattr(exc, "body"):
        return None  # not the provider's answer (a missing API key): the app's own error
    body = exc.body
    message, code = error_fields(body) if isinstance(body, Mapping | list) else (None, None)
    status = getattr(exc, "status_code", None)
    if message is None:
        if status is not None:
            message = f"The model provider answered with HTTP status {status}."
        else:  # an in-stream error without a message: the SDK's own words are a constant
            message = "The model provider reported an error."
    if code is None:
        sdk_code = getattr(exc, "code", None) or status
        code = None if sdk_code is None else str(sdk_code)
    return ProviderError(message, code, status=status)


def url_citation(annotation: Any, offset: int = 0) -> Citation | None:
    """A :class:`Citation` from a ``url_citation`` annotation, nested (OpenAI, OpenRouter:
    ``{"type": "url_citation", "url_citation": {...}}``) or flat (the Responses API), its
    span shifted by ``offset`` (where the annotated text begins in the answer)."""
    if not isinstance(annotation, Mapping) or annotation.get("type") != "url_citation":
        return None
    body = annotation.get("url_citation")
    if not isinstance(body, Mapping):
        body = annotation
    start, end = span(body.get("start_index"), body.get("end_index"), offset)
    return Citation(
        "url",
        url=str_or_none(body.get("url")),
        title=str_or_none(body.get("title")),
        start=start,
        end=end,
        raw=annotation,
    )


def numbered_sources(fields: Mapping[str, Any], emitted: int = 0) -> list[Citation]:
    """Perplexity's numbered sources (top-level ``citations`` and ``search_results``) after
    the first ``emitted`` ones, as span-less :class:`Citation` objects (see the module
    docstring)."""
    results = [r for r in fields.get("search_results") or () if isinstance(r, Mapping)]
    urls = fields.get("citations")
    if not isinstance(urls, list) or not urls:
        urls = [r.get("url") for r in results]
    by_url = {r.get("url"): r for r in results}
    out: list[Citation] = []
    for number in range(emitted + 1, len(urls) + 1):
        url = urls[number - 1]
        result = by_url.get(url, {})
        out.append(
            Citation(
                "url",
                url=str_or_none(url),
                title=str_or_none(result.get("title")),
                index=number,
                raw={"url": url, **result},
            )
        )
    return out


class Normalizer:
    """Normalises ``chat.completion.chunk`` objects (see the module docstring).

    Tool-call fragments are joined by ``index`` and announced as :class:`ToolCallDelta`;
    each call is emitted whole as :class:`ToolCall` when the choice finishes (or the stream
    ends). Mistral sends calls whole with no ``index``: they are numbered in arrival order.
    Usage is kept as running counts (``usage``, or Groq's ``x_groq.usage``; each key's last
    value) and emitted at the end, since Perplexity repeats it on every chunk. One
    :class:`Finish` per stream: OpenRouter repeats ``finish_reason`` on its trailing usage
    chunk. Citations are emitted once each, however often the provider repeats them.

    Args:
        choice: which choice to stream when the request asked for several (``n > 1``;
            ``choices[].index``). Only that choice's text, reasoning, tool calls, citations
            and finish reason are streamed; the usage is the provider's, which counts every
            choice. ``None``: the stream must have one choice; the first chunk that carries
            another index gives an :class:`ErrorEvent` with code ``"multiple_choices"`` and
            nothing more is emitted (no finish, no usage).
    """

    def __init__(self, *, choice: int | None = None) -> None:
        self._choice = choice
        self._calls: dict[int, list[Any]] = {}  # index -> [id, name, [argument fragments]]
        self._call_keys: dict[int, int] = {}  # a reused provider index -> its newest call's
        self._last_call: int | None = None  # the call the last fragment went to
        self._usage: dict[str, Any] = {}
        self._finished = False  # OpenRouter repeats finish_reason on its trailing usage chunk
        self._failed = False
        self._cited: set[tuple[Any, ...]] = set()
        self._sources = 0  # Perplexity: numbered sources emitted so far

    def feed(self, item: Any) -> list[LLMEvent]:
        if self._failed:
            return []
        chunk = as_mapping(item)
        out: list[LLMEvent] = []
        error = chunk.get("error")
        if error:
            # OpenRouter: a normal chunk with a top-level error object.
            if isinstance(error, Mapping):
                code = error.get("code") or error.get("type")
                out.append(ErrorEvent(str(error.get("message") or "Provider error"), _str(code)))
            else:
                out.append(ErrorEvent(str(error)))
            return out
        choices = chunk.get("choices") or ()
        wanted = 0 if self._choice is None else self._choice
        if self._choice is None:
            for choice in choices:
                index = choice.get("index", 0) if isinstance(choice, Mapping) else 0
                if index not in (0, None):
                    self._failed = True
                    return [multiple_choices_error(index)]
        raw_usage = chunk.get("usage") or (chunk.get("x_groq") or {}).get("usage")
        if isinstance(raw_usage, Mapping) and raw_usage:
            merge_counts(self._usage, raw_usage)
        if chunk.get("citations") or chunk.get("search_results"):
            sources = numbered_sources(chunk, self._sources)
            self._sources += len(sources)
            out.extend(sources)
        for choice in choices:
            if not isinstance(choice, Mapping) or (choice.get("index") or 0) != wanted:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out.append(ReasoningDelta(reasoning))
            content = delta.get("content")
            if isinstance(content, str):
                if content:
                    out.append(TextDelta(content))
            elif isinstance(content, list):
                out.extend(self._once(_typed_parts(content)))
            refusal = delta.get("refusal")
            if isinstance(refusal, str) and refusal:
                out.append(TextDelta(refusal))  # what the user should see, as in Responses
            for call in delta.get("tool_calls") or ():
                out.append(self._tool_call_fragment(call))
            legacy_call = delta.get("function_call")
            if isinstance(legacy_call, Mapping):  # ``functions=``: one call, no index or id
                out.append(self._tool_call_fragment({"index": 0, "function": legacy_call}))
            out.extend(self._annotations(delta.get("annotations")))
            message = choice.get("message")
            if isinstance(message, Mapping):
                out.extend(self._annotations(message.get("annotations")))
            raw_finish = choice.get("finish_reason")
            if raw_finish:
                out.extend(self._flush())
                if not self._finished:
                    self._finished = True
                    out.append(finish(raw_finish))
        return out

    def close(self) -> list[LLMEvent]:
        if self._failed:
            return []
        out: list[LLMEvent] = self._flush()
        if self._usage:
            out.append(usage(self._usage))
            self._usage = {}
        return out

    def _annotations(self, annotations: Any) -> list[LLMEvent]:
        if not isinstance(annotations, list):
            return []
        return self._once([url_citation(annotation) for annotation in annotations])

    def _once(self, events: list[Any]) -> list[LLMEvent]:
        """``events`` without the citations already sent (and without ``None``)."""
        out: list[LLMEvent] = []
        for event in events:
            if isinstance(event, Citation):
                key = (event.url, event.title, event.document_id, event.start, event.end)
                if key in self._cited:
                    continue
                self._cited.add(key)
            if event is not None:
                out.append(event)
        return out

    def _tool_call_fragment(self, call: Mapping[str, Any]) -> ToolCallDelta:
        function = call.get("function") or {}
        call_id = call.get("id") or ""
        name = function.get("name") or ""
        arguments = function.get("arguments") or ""
        if not isinstance(arguments, str):
            arguments = json.dumps(arguments, ensure_ascii=False)
        index = self._call_index(call.get("index"), call_id, name)
        state = self._calls.get(index)
        if state is None:
            state = self._calls[index] = [call_id, name, []]
        else:
            state[0] = state[0] or call_id
            state[1] = state[1] or name
        state[2].append(arguments)
        return ToolCallDelta(index, state[0], state[1], arguments)

    def _call_index(self, index: Any, call_id: str, name: str) -> int:
        """Which call a fragment belongs to. OpenAI gives every fragment the call's ``index``
        and only the first its ``id`` and name (API reference, the chat completion chunk
        object). Compatible servers differ: some leave ``index`` out of the argument pieces
        after the first (Ollama, Gemini's OpenAI endpoint), Mistral sends whole calls with
        no index, and some parsers (vLLM-style) give every call index 0, each with its own
        id. A fragment that brings another id than its index's call starts a call of its own;
        one with neither index, id nor name continues the last call."""
        calls = self._calls
        provider_index: int | None = None
        if isinstance(index, int):
            key = self._call_keys.get(index, index)
            known = calls.get(key)
            if known is None or not call_id or not known[0] or known[0] == call_id:
                self._last_call = key
                return key
            provider_index = index
        else:
            if call_id:
                for key, state in calls.items():
                    if state[0] == call_id:
                        self._last_call = key
                        return key
            elif not name and self._last_call is not None:
                return self._last_call
        key = max(calls, default=-1) + 1
        if provider_index is not None:
            self._call_keys[provider_index] = key
        self._last_call = key
        return key

    def _flush(self) -> list[LLMEvent]:
        calls: list[LLMEvent] = [
            ToolCall(index, state[0], state[1], "".join(state[2]))
            for index, state in sorted(self._calls.items())
        ]
        self._calls.clear()
        self._call_keys.clear()
        self._last_call = None
        return calls


class HelperNormalizer(Normalizer):
    """:class:`Normalizer` for the events of the ``openai`` SDK's ``chat.completions.stream()``
    (``AsyncChatCompletionStream``, ``ChatCompletionStream``). Each chunk comes first as a
    ``chunk`` event; the derived events after it repeat that chunk's content and are skipped
    (source: ``openai/lib/streaming/chat/_events.py``)."""

    def feed(self, item: Any) -> list[LLMEvent]:
        if getattr(item, "type", None) != "chunk":
            return []
        return super().feed(item.chunk)


def _typed_parts(parts: list[Any]) -> list[LLMEvent]:
    """Mistral/Magistral content arrays: ``text``, ``thinking`` and ``reference`` parts."""
    out: list[LLMEvent] = []
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind == "text" and part.get("text"):
            out.append(TextDelta(str(part["text"])))
        elif kind == "thinking":
            for inner in part.get("thinking") or ():
                if isinstance(inner, Mapping) and inner.get("text"):
                    out.append(ReasoningDelta(str(inner["text"])))
        elif kind == "reference":
            out.extend(
                Citation("document", document_id=str(reference), raw=part)
                for reference in part.get("reference_ids") or ()
                if isinstance(reference, int | str) and not isinstance(reference, bool)
            )
    return out


def _str(value: Any) -> str | None:
    return None if value is None else str(value)
