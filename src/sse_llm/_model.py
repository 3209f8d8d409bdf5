"""The normalised LLM stream: a few small typed events every provider maps onto.

Every source (a plain text generator, the OpenAI, Anthropic, Gemini, Mistral or Ollama
streams, LangChain) is turned into these, and every wire format renders only these. Field
names follow the providers' shared vocabulary: ``delta``, ``finish_reason``, ``usage``,
tool call.

What the model *says* is :class:`TextDelta`, :class:`ReasoningDelta` and the client
:class:`ToolCall`\\ s; what it *cites* is :class:`Citation`; what the provider *does* on its
behalf (web search, code execution, file search) is :class:`ToolActivity`, which a client is
never asked to run. The stream ends with :class:`Finish` (and :class:`Usage`), or with an
:class:`ErrorEvent`.

Offsets: every ``start`` / ``end`` in these events counts characters (Python ``str`` indexes,
i.e. Unicode code points) into the *whole answer text*, the concatenation of every
:class:`TextDelta` of the stream, whatever unit the provider used (UTF-8 bytes for Gemini).
A JavaScript client, whose strings count UTF-16 code units, must convert them for text
outside the Basic Multilingual Plane (emoji).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, get_args

__all__ = [
    "Citation",
    "CitationKind",
    "ErrorEvent",
    "Finish",
    "FinishReason",
    "LLMEvent",
    "ReasoningDelta",
    "TextDelta",
    "ToolActivity",
    "ToolActivityStatus",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
]

#: The normalised finish reasons: OpenAI Chat Completions' vocabulary (``stop``, ``length``,
#: ``tool_calls``, ``content_filter``), plus ``pause`` (the provider paused a long turn that
#: the client may continue by sending the answer back: Anthropic ``pause_turn``, "Handling
#: stop reasons"), ``error`` and ``other``. The provider's own value is kept in
#: :attr:`Finish.raw_reason`.
FinishReason: TypeAlias = Literal[
    "stop", "length", "tool_calls", "content_filter", "pause", "error", "other"
]

_FINISH_REASONS: tuple[str, ...] = get_args(FinishReason)

#: What a :class:`Citation` points at: a web page (``url``), a document the request supplied
#: (``document``: Anthropic document blocks, Gemini retrieval), or a stored file (``file``:
#: OpenAI file search and code-interpreter files).
CitationKind: TypeAlias = Literal["url", "document", "file"]

#: The life of a :class:`ToolActivity`.
ToolActivityStatus: TypeAlias = Literal["started", "finished", "failed"]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer text, to be appended to what came before."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning or thinking text, kept apart from the answer.

    From DeepSeek ``reasoning_content``, Groq/OpenRouter ``reasoning``, Anthropic
    ``thinking_delta``, Gemini ``thought`` parts, Responses reasoning summaries.
    """

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call's arguments as it streams.

    Only for tools the *client* runs (function calling); a tool the provider runs itself is
    a :class:`ToolActivity`.

    Attributes:
        index: position of the call among this response's tool calls (0-based).
        id: the provider's call id (``call_...``, ``toolu_...``); ``""`` if it gives none.
        name: the function name.
        arguments: the next fragment of the JSON arguments text (may be ``""`` on the
            first fragment, which announces the call).
    """

    index: int
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A complete tool call, its argument fragments joined: a tool the client must run.

    Attributes:
        index: position among this response's tool calls (0-based).
        id: the provider's call id; ``""`` if it gives none (Gemini).
        name: the function name.
        arguments: the complete arguments as JSON text, exactly as the model wrote it (it
            may not be valid JSON when the model was cut off).
    """

    index: int
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Citation:
    """A source the answer cites: a web page, a supplied document, or a stored file.

    Emitted once per provider citation, as soon as it is complete (for a span, when the
    cited text has streamed). A provider that repeats its citations (in a final message,
    on every chunk) still gives one :class:`Citation` each.

    Attributes:
        kind: ``"url"``, ``"document"`` or ``"file"`` (see :data:`CitationKind`).
        url: the source's address, as the provider gave it (any scheme: a renderer must
            allow only ``http`` / ``https`` links). OpenAI ``url_citation.url``, Perplexity
            ``citations[i]``, Anthropic ``web_search_result_location.url``, Gemini
            ``groundingChunks[i].web.uri``.
        title: the page or document title, when given (OpenAI ``url_citation.title``,
            Perplexity ``search_results[i].title``, Anthropic ``title`` /
            ``document_title``, Gemini ``web.title``; the ``filename`` of a file).
            Untrusted text: escape it.
        document_id: which document or file: OpenAI ``file_id``, Anthropic ``file_id`` or
            the request's ``document_index`` (as text), Gemini ``retrievedContext``
            document name. ``None`` for a web page.
        container_id: the OpenAI code-interpreter container holding the file
            (``container_file_citation``); the file is fetched from
            ``/v1/containers/{container_id}/files/{document_id}/content``.
        cited_text: the words quoted from the source, when the provider gives them
            (Anthropic ``cited_text``, Gemini ``retrievedContext.text``).
        start: where the supported part of the answer begins, as a character offset into
            the whole answer text (see the module docstring); ``None`` when the provider
            gives no span. Converted from: OpenAI ``start_index`` (characters of the
            message / output text part), Gemini ``segment.startIndex`` (UTF-8 bytes of the
            candidate text), Anthropic: the text block the citation is attached to.
        end: the end of that span (exclusive); ``start == end`` marks a point (a Responses
            ``file_citation`` placed at ``index``).
        index: the source's 1-based number in the provider's numbered source list: the
            ``[n]`` markers of a Perplexity answer (``citations[n - 1]``), the position of
            a Gemini ``groundingChunks`` entry plus one. ``None`` when sources are not
            numbered.
        raw: the provider's citation object as received (not compared, not shown in
            ``repr``; may be large: OpenRouter sends page extracts).
    """

    kind: CitationKind
    url: str | None = None
    title: str | None = None
    document_id: str | None = None
    container_id: str | None = None
    cited_text: str | None = None
    start: int | None = None
    end: int | None = None
    index: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def source_identity(citation: Citation) -> tuple[str | int | None, ...]:
    """What makes two citations the same source (the same page cited for two sentences):
    everything but the span and the quoted text."""
    return (
        citation.kind,
        citation.url,
        citation.document_id,
        citation.container_id,
        citation.index,
    )


@dataclass(frozen=True, slots=True)
class ToolActivity:
    """A tool the *provider* runs on the model's behalf: web search, code execution, file
    search. Distinct from :class:`ToolCall`: nothing is asked of the client, the result is
    already part of the same response. Lets a UI show "Searching the web..." while it runs.

    One activity (one ``id``) is reported ``started``, then ``finished`` or ``failed``.
    Providers that report a tool only after it ran (Gemini) give the terminal event alone.

    Attributes:
        id: the provider's id for the call (Anthropic ``srvtoolu_...``, Responses ``ws_...``
            item id); Gemini gives none: ``"web_search_0"``, ``"code_execution_0"`` ...
        name: ``"web_search"``, ``"web_fetch"``, ``"code_execution"``, ``"file_search"``,
            ``"image_generation"``, or the provider's own tool name for any other tool
            (an MCP tool's name, for instance).
        status: ``"started"``, ``"finished"`` or ``"failed"`` (the tool itself failed: a
            search error, a code-execution timeout; a program that ran and exited non-zero
            has ``finished``).
        summary: a short text safe to show: the search query or fetched URL while
            ``started``; on ``finished`` the outcome when reported (``"5 results"``,
            ``"exit code 0"``), else the query again; on ``failed`` the provider's error
            code. Never a raw payload (search results, program output stay in ``raw``).
            Untrusted text: escape it.
        input: the tool's arguments when the provider gives them, as written by the model
            (``{"query": ...}``, ``{"code": ...}``, ``{"command": ...}``); ``None`` if not
            known at this event.
        raw: the provider's objects for this event (not compared, not in ``repr``).
    """

    id: str
    name: str
    status: ToolActivityStatus
    summary: str | None = None
    input: Mapping[str, Any] | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts, in tokens. ``None`` where the provider does not report a count.

    A count a provider reported earlier in the stream and then stopped repeating keeps its
    last value (Gemini's final chunk may lack ``candidatesTokenCount``).

    Attributes:
        input_tokens: prompt tokens, cached ones included (OpenAI ``prompt_tokens``,
            Responses ``input_tokens``, Gemini ``promptTokenCount``; Anthropic
            ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``,
            because Anthropic counts cache reads and writes apart).
        output_tokens: generated tokens (OpenAI ``completion_tokens``, Anthropic and
            Responses ``output_tokens``, Gemini ``candidatesTokenCount``, which leaves out
            ``thoughtsTokenCount``).
        total_tokens: as reported, else ``None``.
        reasoning_tokens: tokens spent on reasoning (OpenAI
            ``completion_tokens_details.reasoning_tokens``, Responses
            ``output_tokens_details.reasoning_tokens``, Gemini ``thoughtsTokenCount``).
        cached_input_tokens: the part of ``input_tokens`` read from the provider's prompt
            cache (OpenAI ``prompt_tokens_details.cached_tokens``, Responses
            ``input_tokens_details.cached_tokens``, Anthropic ``cache_read_input_tokens``,
            Gemini ``cachedContentTokenCount``).
        cache_write_tokens: the part of ``input_tokens`` written to the prompt cache
            (Anthropic ``cache_creation_input_tokens``, OpenRouter
            ``prompt_tokens_details.cache_write_tokens``).
        raw: the provider's usage object as received.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_write_tokens: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def as_dict(self) -> dict[str, int]:
        """The counts that are known, as ``{"input_tokens": 12, ...}``."""
        out: dict[str, int] = {}
        for key in _USAGE_KEYS:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


_USAGE_KEYS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "reasoning_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
)


@dataclass(frozen=True, slots=True)
class Finish:
    """The model finished its answer.

    Attributes:
        reason: the normalised reason (see :data:`FinishReason`).
        raw_reason: the provider's own value (``"end_turn"``, ``"MAX_TOKENS"`` ...), or
            ``None`` when the stream ended without one.

    Raises:
        ValueError: ``reason`` is not a :data:`FinishReason` (a provider's own value belongs
            in ``raw_reason``): caught where the source builds it, not when the stream ends.
    """

    reason: FinishReason
    raw_reason: str | None = None

    def __post_init__(self) -> None:
        if self.reason not in _FINISH_REASONS:
            raise ValueError(
                f"Finish reason must be one of {', '.join(_FINISH_REASONS)}, not "
                f"{self.reason!r}; put the provider's own value in raw_reason"
            )


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """The provider reported an error inside the stream; nothing more will come.

    A value the stream carries (not an exception; the exception a source raises for a
    provider error is :class:`~sse_llm.ProviderError`).

    Attributes:
        message: text safe to show the end user.
        code: the provider's error code or type, when given; sse-llm's own codes:
            ``"multiple_choices"`` (the provider streamed several choices and none was
            selected with ``choice=``).
    """

    message: str
    code: str | None = None


#: Any normalised event a source may yield and every provider stream is turned into: text and
#: reasoning deltas, tool calls (fragments or whole), citations, provider-run tool activity,
#: usage, the finish, an in-stream error.
LLMEvent: TypeAlias = (
    TextDelta
    | ReasoningDelta
    | ToolCallDelta
    | ToolCall
    | Citation
    | ToolActivity
    | Usage
    | Finish
    | ErrorEvent
)

if TYPE_CHECKING:
    #: Deprecated name of :class:`ErrorEvent` (removed in the next release).
    StreamError: TypeAlias = ErrorEvent
else:

    def __getattr__(name: str) -> Any:
        """``StreamError``: the old name of :class:`ErrorEvent`, for one release (PEP 562)."""
        if name == "StreamError":
            warnings.warn(
                "sse_llm._model.StreamError is deprecated and will be removed in the next "
                "release; use ErrorEvent",
                DeprecationWarning,
                stacklevel=2,
            )
            return ErrorEvent
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
