"""Google Gemini ``streamGenerateContent`` streams (Gemini API and Vertex AI).

One ``GenerateContentResponse`` per item, whether it came from ``?alt=sse`` (read it with
:func:`sse_llm.sources.sse_json`), from the JSON-array form without ``alt=sse``
(:func:`sse_llm.sources.json_array`), or from the ``google-genai`` SDK
(``client.aio.models.generate_content_stream``: its pydantic objects are dumped by alias, so
they have the same camelCase fields). Source of the rules: Gemini API reference,
"GenerateContentResponse" / "Candidate" / "GroundingMetadata" / "UsageMetadata" /
"CodeExecutionResult"; the "Grounding with Google Search" and "Code execution" guides; shapes
as recorded in the test fixtures' FORMATS.md.

Mapped (one candidate; see :class:`Normalizer` for ``candidateCount > 1``):

- ``text`` parts -> :class:`TextDelta`; parts with ``"thought": true`` -> :class:`ReasoningDelta`
  (``thoughtSignature`` is opaque and skipped);
- ``functionCall`` parts arrive whole -> :class:`ToolCall` directly, numbered in arrival order,
  ``args`` written as compact JSON; the id is ``functionCall.id`` when given (Vertex may), else
  ``""`` (the Gemini API gives none). Vertex AI's streamed arguments
  (``streamFunctionCallArguments``: a call's parts carry ``willContinue: true`` and
  ``partialArgs``, each a ``jsonPath`` (RFC 9535) and a ``stringValue`` / ``numberValue`` /
  ``boolValue`` / ``nullValue``, a string continued over parts while its ``willContinue`` is
  true; the call ends at a part without ``willContinue``, often an empty ``functionCall``) are
  put together and sent as one :class:`ToolCall` when the call ends (or at the finish, if it
  never does);
- ``groundingMetadata`` (Google Search, Vertex AI Search, Maps grounding) ->
  :class:`Citation`: one per ``groundingSupports`` entry and chunk it names
  (``groundingChunkIndices``), in the order given, with the chunk's ``web`` /
  ``retrievedContext`` / ``maps`` ``uri`` and ``title``, ``index`` = the chunk's position + 1,
  and the span of ``segment.startIndex`` / ``endIndex``, which count UTF-8 *bytes* of the
  candidate's text and are converted to characters; then, when the candidate finishes, one
  span-less :class:`Citation` per chunk no support named. ``web`` and ``maps`` chunks are
  ``kind="url"``, ``retrievedContext`` chunks ``kind="document"`` (``cited_text`` its
  ``text``, ``document_id`` its ``documentName``). The Google Search suggestion widget
  (``searchEntryPoint.renderedContent``, HTML) is not surfaced;
- ``citationMetadata.citationSources`` (recitation sources; ``citations`` in Vertex AI) ->
  :class:`Citation` ``kind="url"`` without a span;
- ``groundingMetadata.webSearchQueries`` -> one :class:`ToolActivity` ``web_search``
  ``finished`` per query (id ``web_search_<n>``, summary and ``input`` the query): Gemini
  reports its searches only after running them, so there is no ``started``;
- ``executableCode`` / ``codeExecutionResult`` parts (Gemini's own code execution) ->
  :class:`ToolActivity` ``code_execution`` (id ``code_execution_<n>``, or the part's ``id``
  when given): ``started`` with ``input`` ``{"code", "language"}``, then ``finished``
  (``OUTCOME_OK``) or ``failed`` (``OUTCOME_FAILED``, ``OUTCOME_DEADLINE_EXCEEDED``), summary
  the outcome (``"ok"``, ``"failed"``, ``"deadline_exceeded"``); the program's output stays in
  ``raw``. Never tool calls;
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
- ``usageMetadata`` is repeated with running counts; each key keeps its last reported value
  (a final chunk without ``candidatesTokenCount`` keeps the earlier count) -> :class:`Usage`
  at the end (``promptTokenCount``, ``candidatesTokenCount``, ``totalTokenCount``,
  ``thoughtsTokenCount``, ``cachedContentTokenCount``). Note: Gemini counts thought tokens
  apart from ``candidatesTokenCount`` and tool-use prompt tokens
  (``toolUsePromptTokenCount``, kept in ``raw``) apart from ``promptTokenCount``;
  ``output_tokens`` is reported as Gemini gives it;
- an ``error`` object -> :class:`ErrorEvent` (message, and ``status`` as code).
"""

from __future__ import annotations

import dataclasses
import json
import re
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
    ToolActivity,
    ToolActivityStatus,
    ToolCall,
    Usage,
)
from ._common import (
    error_fields,
    int_or_none,
    merge_counts,
    multiple_choices_error,
    sdk_class,
    status_error,
    str_or_none,
)

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
# CodeExecutionResult.Outcome (names, and numbers under enum-encoding=int).
_OUTCOMES: dict[Any, str] = {
    "OUTCOME_OK": "ok",
    "OUTCOME_FAILED": "failed",
    "OUTCOME_DEADLINE_EXCEEDED": "deadline_exceeded",
    1: "ok",
    2: "failed",
    3: "deadline_exceeded",
}


# One step of an RFC 9535 JSONPath as Vertex AI writes them: .name, [0], ['name'], ["name"].
_PATH_STEP = re.compile(
    r"""\.([^.\[\]]+)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]|\["((?:[^"\\]|\\.)*)"\]"""
)
_ESCAPE = re.compile(r"\\(.)")


def _path_steps(path: Any) -> tuple[str | int, ...] | None:
    """``$.a.b[0]`` -> ``("a", "b", 0)``; ``None`` for what is not such a path."""
    if not isinstance(path, str) or not path.startswith("$"):
        return None
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        found = _PATH_STEP.match(path, position)
        if found is None:
            return None
        name, index, single, double = found.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(name if name is not None else _ESCAPE.sub(r"\1", single or double or ""))
        position = found.end()
    return tuple(steps) or None


class _StreamedCall:
    """A Vertex AI function call whose arguments come in parts (``partialArgs``)."""

    __slots__ = ("args", "id", "index", "name", "open")

    def __init__(self, index: int) -> None:
        self.index = index
        self.id = ""
        self.name = ""
        self.args: dict[str, Any] = {}
        self.open: set[tuple[str | int, ...]] = set()  # paths whose string continues

    def add(self, call: Mapping[str, Any]) -> None:
        self.id = self.id or str_or_none(call.get("id")) or ""
        self.name = self.name or str_or_none(call.get("name")) or ""
        if isinstance(call.get("args"), Mapping):
            self.args.update(call["args"])
        for partial in call.get("partialArgs") or ():
            if isinstance(partial, Mapping):
                self._set(partial)

    def _set(self, partial: Mapping[str, Any]) -> None:
        steps = _path_steps(partial.get("jsonPath"))
        if steps is None:
            return
        if "stringValue" in partial:
            value: Any = str(partial["stringValue"])
            if steps in self.open:
                earlier = _get(self.args, steps)
                value = (earlier if isinstance(earlier, str) else "") + value
        elif "numberValue" in partial:
            value = partial["numberValue"]
        elif "boolValue" in partial:
            value = bool(partial["boolValue"])
        elif "nullValue" in partial:
            value = None
        else:
            return
        if partial.get("willContinue"):
            self.open.add(steps)
        else:
            self.open.discard(steps)
        _put(self.args, steps, value)

    def whole(self) -> ToolCall:
        arguments = json.dumps(self.args, ensure_ascii=False, separators=(",", ":"))
        return ToolCall(self.index, self.id, self.name, arguments)


def _get(node: Any, steps: tuple[str | int, ...]) -> Any:
    for step in steps:
        if isinstance(step, int) and isinstance(node, list) and step < len(node):
            node = node[step]
        elif isinstance(step, str) and isinstance(node, dict):
            node = node.get(step)
        else:
            return None
    return node


def _put(root: dict[str, Any], steps: tuple[str | int, ...], value: Any) -> None:
    """Set ``value`` at ``steps`` under ``root``, making the objects and arrays on the way."""
    node: Any = root
    for step, after in zip(steps, (*steps[1:], None), strict=True):
        if isinstance(step, int):
            if not isinstance(node, list):
                return  # a path that contradicts what came before: left out
            node.extend([None] * (step + 1 - len(node)))
        elif not isinstance(node, dict):
            return
        if after is None:
            node[step] = value
            return
        child = node[step] if isinstance(step, int) else node.get(step)
        if not isinstance(child, dict | list):
            child = [] if isinstance(after, int) else {}
            node[step] = child
        node = child


def matches(item: Any) -> bool:
    """A ``GenerateContentResponse``: a ``google-genai`` object or its JSON mapping."""
    if isinstance(item, Mapping):
        return "candidates" in item or "usageMetadata" in item or "promptFeedback" in item
    return type(item).__name__ == "GenerateContentResponse"


def translate(exc: BaseException) -> ProviderError | None:
    """The provider's message from a ``google-genai`` SDK error (``errors.APIError``:
    ``ClientError`` for 4xx, ``ServerError`` for 5xx; ``code`` the HTTP status, ``details`` the
    answer's JSON).

    Gemini answers a failed request with ``{"error": {"code", "message", "status"}}``; for a
    body that is not JSON the SDK makes ``details`` ``{"message": <the body>, "status": ...}``
    itself, which may be a proxy's HTML page, so only the ``error`` object is the provider's
    wording. Source: the SDK's ``errors.py`` (``APIError.raise_for_response``).
    """
    if sdk_class(exc, "google.genai.errors") is None or not hasattr(exc, "details"):
        return None
    status = getattr(exc, "code", None)
    if not isinstance(status, int):
        return None
    details = exc.details
    if isinstance(details, list) and details:
        details = details[0]
    provider_body = isinstance(details, Mapping) and isinstance(details.get("error"), Mapping)
    return status_error(status, details if provider_body else None)


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
        input_tokens=int_or_none(raw.get("promptTokenCount")),
        output_tokens=int_or_none(raw.get("candidatesTokenCount")),
        total_tokens=int_or_none(raw.get("totalTokenCount")),
        reasoning_tokens=int_or_none(raw.get("thoughtsTokenCount")),
        cached_input_tokens=int_or_none(raw.get("cachedContentTokenCount")),
        raw=raw,
    )


def grounding_source(chunk: Any, number: int | None = None) -> Citation | None:
    """A span-less :class:`Citation` from one ``groundingChunks`` entry (``number``: its
    position + 1)."""
    if not isinstance(chunk, Mapping):
        return None
    for key in ("web", "maps", "retrievedContext"):
        body = chunk.get(key)
        if not isinstance(body, Mapping):
            continue
        if key == "retrievedContext":
            return Citation(
                "document",
                url=str_or_none(body.get("uri")),
                title=str_or_none(body.get("title")),
                document_id=str_or_none(body.get("documentName")),
                cited_text=str_or_none(body.get("text")),
                index=number,
                raw=chunk,
            )
        return Citation(
            "url",
            url=str_or_none(body.get("uri")),
            title=str_or_none(body.get("title")),
            index=number,
            raw=chunk,
        )
    return None


def _mapping(item: Any) -> Mapping[str, Any]:
    if isinstance(item, Mapping):
        return item
    # google-genai models have snake_case attributes with camelCase aliases (the wire names).
    result: Mapping[str, Any] = item.model_dump(mode="json", by_alias=True, exclude_none=True)
    return result


class _Offsets:
    """UTF-8 byte offsets of the answer text -> character offsets (Gemini's segments count
    bytes). Keeps the text of non-ASCII pieces only: an ASCII piece maps one to one."""

    __slots__ = ("bytes", "chars", "pieces")

    def __init__(self) -> None:
        self.bytes = 0
        self.chars = 0
        self.pieces: list[tuple[int, int, str | None]] = []  # (byte start, char start, text)

    def add(self, text: str) -> None:
        if text.isascii():
            # Consecutive ASCII pieces are one linear run: nothing new to remember.
            if not self.pieces or self.pieces[-1][2] is not None:
                self.pieces.append((self.bytes, self.chars, None))
            self.bytes += len(text)
        else:
            self.pieces.append((self.bytes, self.chars, text))
            self.bytes += len(text.encode("utf-8"))
        self.chars += len(text)

    def char(self, offset: int) -> int:
        """The character offset of byte ``offset`` (clamped to the text so far)."""
        if offset >= self.bytes:
            return self.chars
        low, high = 0, len(self.pieces) - 1
        while low < high:  # the last piece starting at or before ``offset``
            middle = (low + high + 1) // 2
            if self.pieces[middle][0] <= offset:
                low = middle
            else:
                high = middle - 1
        byte_start, char_start, text = self.pieces[low]
        if text is None:
            return char_start + (offset - byte_start)
        prefix = text.encode("utf-8")[: offset - byte_start]
        return char_start + len(prefix.decode("utf-8", errors="ignore"))


class Normalizer:
    """Normalises ``GenerateContentResponse`` chunks (see the module docstring).

    Args:
        choice: which candidate to stream when the request asked for several
            (``candidateCount > 1``; ``candidates[].index``). Only that candidate's text,
            calls, citations, tool activity and finish reason are streamed; the usage is
            Gemini's, which counts every candidate. ``None``: the stream must have one
            candidate; the first chunk with another index gives an :class:`ErrorEvent` with
            code ``"multiple_choices"`` and nothing more is emitted (no finish, no usage).
    """

    def __init__(self, *, choice: int | None = None) -> None:
        self._choice = choice
        self._calls = 0
        self._usage: dict[str, Any] = {}
        self._failed = False
        self._offsets = _Offsets()
        self._cited: set[tuple[Any, ...]] = set()
        self._sources: dict[int, Citation] = {}  # grounding chunk index -> its source
        self._supported: set[int] = set()  # grounding chunks some support named
        self._queries: dict[str, None] = {}  # web search queries reported, in order
        self._code: list[str] = []  # ids of the code executions started
        self._code_done = 0
        self._streamed: _StreamedCall | None = None  # a call whose arguments are streaming

    def feed(self, item: Any) -> list[LLMEvent]:
        if self._failed:
            return []
        chunk = _mapping(item)
        out: list[LLMEvent] = []
        if chunk.get("error"):
            message, code = error_fields(chunk)
            return [ErrorEvent(message or "The model provider reported an error.", code)]
        candidates = chunk.get("candidates")
        wanted = 0 if self._choice is None else self._choice
        if self._choice is None:
            for candidate in candidates or ():
                index = candidate.get("index", 0) if isinstance(candidate, Mapping) else 0
                if index not in (0, None):
                    self._failed = True
                    return [multiple_choices_error(index)]
        metadata = chunk.get("usageMetadata")
        if isinstance(metadata, Mapping) and metadata:
            merge_counts(self._usage, metadata)
        if not candidates:
            feedback = chunk.get("promptFeedback")
            if isinstance(feedback, Mapping) and feedback.get("blockReason"):
                out.append(Finish("content_filter", str(feedback["blockReason"])))
            return out
        for candidate in candidates:
            if not isinstance(candidate, Mapping) or (candidate.get("index") or 0) != wanted:
                continue
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, Mapping) else None
            for part in parts or ():
                out.extend(self._part(part))
            grounding = candidate.get("groundingMetadata")
            if isinstance(grounding, Mapping) and grounding:
                out.extend(self._grounding(grounding))
            recitations = candidate.get("citationMetadata")
            if isinstance(recitations, Mapping):
                out.extend(self._recitations(recitations))
            raw = candidate.get("finishReason")
            if raw is not None and raw not in (0, "FINISH_REASON_UNSPECIFIED"):
                out.extend(self._end_streamed_call())
                out.extend(self._unsupported_sources())
                out.append(finish(raw, self._calls > 0))
        return out

    def close(self) -> list[LLMEvent]:
        if self._failed:
            return []
        out: list[LLMEvent] = [*self._end_streamed_call(), *self._unsupported_sources()]
        if self._usage:
            out.append(usage(self._usage))
            self._usage = {}
        return out

    def _part(self, part: Any) -> list[LLMEvent]:
        if not isinstance(part, Mapping):
            return []
        call = part.get("functionCall")
        if isinstance(call, Mapping) and (
            self._streamed is not None or call.get("willContinue") or call.get("partialArgs")
        ):
            return self._streamed_call(call)
        if isinstance(call, Mapping):
            if not (call.get("name") or call.get("id") or call.get("args")):
                return []  # the end marker of a streamed call that its last part already ended
            index = self._calls
            self._calls += 1
            arguments = json.dumps(
                call.get("args") or {}, ensure_ascii=False, separators=(",", ":")
            )
            return [ToolCall(index, call.get("id") or "", call.get("name") or "", arguments)]
        code = part.get("executableCode")
        if isinstance(code, Mapping):
            return [self._code_started(part, code)]
        result = part.get("codeExecutionResult")
        if isinstance(result, Mapping):
            return [self._code_finished(part, result)]
        text = part.get("text")
        if not isinstance(text, str) or not text:
            return []
        if part.get("thought"):
            return [ReasoningDelta(text)]
        self._offsets.add(text)
        return [TextDelta(text)]

    def _streamed_call(self, call: Mapping[str, Any]) -> list[LLMEvent]:
        if self._streamed is None:
            self._streamed = _StreamedCall(self._calls)
            self._calls += 1
        self._streamed.add(call)
        return [] if call.get("willContinue") else self._end_streamed_call()

    def _end_streamed_call(self) -> list[LLMEvent]:
        streamed, self._streamed = self._streamed, None
        return [streamed.whole()] if streamed is not None else []

    def _code_started(self, part: Mapping[str, Any], code: Mapping[str, Any]) -> ToolActivity:
        tool_id = str_or_none(code.get("id")) or f"code_execution_{len(self._code)}"
        self._code.append(tool_id)
        arguments: dict[str, Any] = {}
        if isinstance(code.get("code"), str):
            arguments["code"] = code["code"]
        if code.get("language") is not None:
            arguments["language"] = str(code["language"])
        return ToolActivity(tool_id, "code_execution", "started", input=arguments or None, raw=part)

    def _code_finished(self, part: Mapping[str, Any], result: Mapping[str, Any]) -> ToolActivity:
        tool_id = str_or_none(result.get("id"))
        if tool_id is None:
            if self._code_done < len(self._code):
                tool_id = self._code[self._code_done]
            else:
                tool_id = f"code_execution_{self._code_done}"
        self._code_done += 1
        outcome = _OUTCOMES.get(result.get("outcome"), str(result.get("outcome") or "") or None)
        status: ToolActivityStatus = "finished" if outcome == "ok" else "failed"
        return ToolActivity(tool_id, "code_execution", status, summary=outcome, raw=part)

    def _grounding(self, grounding: Mapping[str, Any]) -> list[LLMEvent]:
        out: list[LLMEvent] = []
        for query in grounding.get("webSearchQueries") or ():
            if isinstance(query, str) and query and query not in self._queries:
                number = len(self._queries)
                self._queries[query] = None
                out.append(
                    ToolActivity(
                        f"web_search_{number}",
                        "web_search",
                        "finished",
                        summary=query,
                        input={"query": query},
                        raw={"webSearchQueries": grounding.get("webSearchQueries")},
                    )
                )
        chunks = grounding.get("groundingChunks")
        if isinstance(chunks, list):
            for position, chunk in enumerate(chunks):
                source = grounding_source(chunk, position + 1)
                if source is not None:
                    self._sources[position] = source
        for support in grounding.get("groundingSupports") or ():
            if not isinstance(support, Mapping):
                continue
            segment = support.get("segment")
            segment = segment if isinstance(segment, Mapping) else {}
            first = int_or_none(segment.get("startIndex")) or 0
            last = int_or_none(segment.get("endIndex"))
            start = end = None
            if last is not None and 0 <= first < last:
                start, end = self._offsets.char(first), self._offsets.char(last)
            for position in support.get("groundingChunkIndices") or ():
                source = self._sources.get(position) if isinstance(position, int) else None
                if source is None:
                    continue
                self._supported.add(position)
                key = (position, start, end)
                if key in self._cited:
                    continue
                self._cited.add(key)
                out.append(
                    dataclasses.replace(
                        source, start=start, end=end, raw={"chunk": source.raw, "support": support}
                    )
                )
        return out

    def _unsupported_sources(self) -> list[LLMEvent]:
        """The grounding chunks no support named, once, as span-less citations."""
        out: list[LLMEvent] = []
        for position, source in sorted(self._sources.items()):
            if position not in self._supported and (position, None, None) not in self._cited:
                self._cited.add((position, None, None))
                out.append(source)
        return out

    def _recitations(self, metadata: Mapping[str, Any]) -> list[LLMEvent]:
        out: list[LLMEvent] = []
        # "citationSources" in the Gemini API, "citations" in Vertex AI.
        for raw in metadata.get("citationSources") or metadata.get("citations") or ():
            if not isinstance(raw, Mapping):
                continue
            key = ("recitation", raw.get("uri"), raw.get("title"))
            if key in self._cited:
                continue
            self._cited.add(key)
            out.append(
                Citation(
                    "url",
                    url=str_or_none(raw.get("uri")),
                    title=str_or_none(raw.get("title")),
                    raw=raw,
                )
            )
        return out
