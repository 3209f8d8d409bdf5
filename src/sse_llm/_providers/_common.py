"""What every provider module shares: the :class:`Normalizer` protocol, reading SDK objects
and error bodies, and the small rules several providers apply alike (provider-tool names,
running usage counts, spans, the ``n > 1`` error).

Imports nothing from the provider modules, so each of them, and the package's
``__init__``, can import it at its top.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sized
from typing import Any, Protocol

from .._exceptions import ProviderError
from .._model import ErrorEvent, LLMEvent, ReasoningDelta, ToolActivity

__all__ = [
    "ErrorOnly",
    "Normalizer",
    "ReasoningParts",
    "as_mapping",
    "error_fields",
    "int_or_none",
    "is_error_payload",
    "merge_counts",
    "multiple_choices_error",
    "nested_int",
    "results_summary",
    "span",
    "str_or_none",
    "tool_name",
]


class Normalizer(Protocol):
    """Turns one provider's stream items into normalised events. Holds one stream's state."""

    def feed(self, item: Any) -> Iterable[LLMEvent]:
        """Events carried by one stream item (an SDK object or a JSON mapping)."""
        ...

    def close(self) -> Iterable[LLMEvent]:
        """Events owed at the end of the stream (pending tool calls, the final usage)."""
        ...


def as_mapping(item: Any) -> Mapping[str, Any]:
    """A provider SDK object (pydantic) or a JSON mapping, as a mapping of its JSON fields."""
    if isinstance(item, Mapping):
        return item
    dump = getattr(item, "model_dump", None)
    if dump is not None:
        # warnings=False: SDKs build stream objects without validation (``construct``), so
        # pydantic would warn about every union member a field does not match.
        result: Mapping[str, Any] = dump(mode="json", exclude_unset=True, warnings=False)
        return result
    raise TypeError(f"not a provider stream item: {type(item).__name__}")


def error_fields(body: Any) -> tuple[str | None, str | None]:
    """``(message, code)`` from a provider's error body, whichever family wrote it.

    Understands ``{"error": {"message", "type", "code"}}`` (OpenAI and compatibles),
    ``{"type": "error", "error": {"type", "message"}}`` (Anthropic),
    ``{"error": {"code": 429, "message", "status"}}`` (Gemini, also wrapped in a one-element
    array by ``streamGenerateContent``), ``{"error": "text"}`` (Ollama) and the Responses API's
    flat ``{"type": "error", "code", "message"}``. The code is the first string among
    ``code``, ``type``, ``status``, else a numeric ``code`` as text; ``None`` if none is given.
    """
    if isinstance(body, list) and body:
        body = body[0]
    if isinstance(body, str):
        return (body or None), None
    if not isinstance(body, Mapping):
        return None, None
    inner = body.get("error")
    if isinstance(inner, Mapping):
        body = inner
    elif isinstance(inner, str) and inner:
        return inner, None
    message = body.get("message")
    code: Any = None
    for key in ("code", "type", "status"):
        value = body.get(key)
        if isinstance(value, str) and value and value != "error":
            code = value
            break
    if code is None and isinstance(body.get("code"), int):
        code = str(body["code"])
    return (message if isinstance(message, str) and message else None), code


def sdk_class(exc: BaseException, module: str) -> type | None:
    """The class of ``exc``'s own or of one of its bases that a module of ``module`` (a
    package, ``"openai"``, or a module path, ``"google.genai.errors"``) defines: LangChain
    raises the SDKs' errors as subclasses of its own (``langchain_openai``'s
    ``OpenAIRateLimitError(openai.RateLimitError)``)."""
    for cls in type(exc).__mro__:
        name = cls.__module__
        if name == module or name.startswith(module + "."):
            return cls
    return None


#: HTTP statuses that are the server's own configuration's fault: its API key (OpenAI's 401
#: text echoes part of it), its account's access, its model name or base URL, its proxy's
#: credentials. The provider's words about them are for the operator (the hook and the logs
#: get the exception), not for the end user, who gets this; the code still says which.
_OPERATOR_ERRORS = frozenset({401, 403, 404, 407})


def for_end_user(error: ProviderError) -> str:
    """What the end user is shown of ``error``: its message, unless its status is one of the
    server's own configuration errors (401, 403, 404, 407): then a generic text naming it."""
    if error.status in _OPERATOR_ERRORS:
        return f"The model provider refused the server's request (HTTP status {error.status})."
    return error.message


def status_error(status: int, payload: Any) -> ProviderError | None:
    """The provider's error for an HTTP error answer (``status`` 400 or more): the message and
    code of its JSON ``payload`` (see :func:`error_fields`), else a generic message naming the
    status, code the status as text. ``None`` for a status below 400 (an SDK's own failure to
    read a successful answer is not the provider's error)."""
    if status < 400:
        return None
    message, code = error_fields(payload) if isinstance(payload, Mapping | list) else (None, None)
    return ProviderError(
        message or f"The model provider answered with HTTP status {status}.",
        code or str(status),
        status=status,
    )


def is_error_payload(item: Any) -> bool:
    """A bare ``{"error": ...}`` mapping: a stream whose very first item is the error."""
    return isinstance(item, Mapping) and bool(item.get("error"))


class ErrorOnly:
    """Normaliser for a stream that starts with an error object (Groq ``event: error``,
    an Ollama ``{"error": ...}`` line, a Gemini error chunk): nothing else follows it."""

    def feed(self, item: Any) -> list[LLMEvent]:
        message, code = error_fields(as_mapping(item))
        return [ErrorEvent(message or "The model provider reported an error.", code)]

    def close(self) -> list[LLMEvent]:
        return []


class ReasoningParts:
    """Reasoning that comes in parts: OpenAI's reasoning summary has one part per step, each
    a paragraph starting with its bold title (Responses API, ``summary_index``). The parts
    are separate paragraphs, as OpenAI shows them: joined bare, a part's title would run
    into the last sentence of the one before. A blank line goes between two parts."""

    __slots__ = ("_part",)

    def __init__(self) -> None:
        self._part: Hashable = None  # the part the last delta belonged to

    def delta(self, part: Hashable, text: str) -> ReasoningDelta:
        """``text`` of ``part`` (any key that tells parts apart), after a blank line if the
        reasoning so far was another part's."""
        previous, self._part = self._part, part
        return ReasoningDelta(text if previous is None or previous == part else "\n\n" + text)


def multiple_choices_error(index: Any) -> ErrorEvent:
    """The error for a stream with several choices (``n > 1``) when none was selected."""
    return ErrorEvent(
        f"The provider streamed several choices (choice {index} besides 0; a request with "
        "n > 1 or candidateCount > 1), and sse-llm streams one answer. Pass choice=<index> "
        "to select the one to stream.",
        "multiple_choices",
    )


# Provider tool names (Anthropic ``server_tool_use.name``, Responses item types, LangChain
# standard blocks) -> the normalised :attr:`ToolActivity.name`.
_TOOL_NAMES = {
    "web_search": "web_search",
    "web_search_preview": "web_search",
    "web_search_call": "web_search",
    "google_search": "web_search",
    "web_fetch": "web_fetch",
    "code_execution": "code_execution",
    "bash_code_execution": "code_execution",
    "text_editor_code_execution": "code_execution",
    "code_interpreter": "code_execution",
    "code_interpreter_call": "code_execution",
    "file_search": "file_search",
    "file_search_call": "file_search",
    "image_generation": "image_generation",
    "image_generation_call": "image_generation",
}


def tool_name(raw: Any) -> str:
    """The normalised name of a provider-run tool (see :class:`~sse_llm.ToolActivity`)."""
    text = str(raw or "")
    return _TOOL_NAMES.get(text, text)


def merge_counts(into: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Running usage counts: each key reported now replaces its earlier value, and a key the
    provider stopped reporting keeps its last one (``None`` values are not reports)."""
    for key, value in update.items():
        if value is not None:
            into[key] = value


def int_or_none(value: Any) -> int | None:
    """``value`` if it is an ``int`` (not a ``bool``), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def nested_int(raw: Mapping[str, Any], outer: str, inner: str) -> int | None:
    """``raw[outer][inner]`` if that is an ``int`` (usage details objects)."""
    details = raw.get(outer)
    return int_or_none(details.get(inner)) if isinstance(details, Mapping) else None


def str_or_none(value: Any) -> str | None:
    """``value`` if it is a non-empty ``str``, else ``None``."""
    return value if isinstance(value, str) and value else None


def results_summary(results: Sized) -> str:
    """A provider tool's summary for its result list: ``"1 result"``, ``"3 results"``."""
    return "1 result" if len(results) == 1 else f"{len(results)} results"


def started_activity(
    tool_id: str, name: str, arguments: Mapping[str, Any] | None, raw: Mapping[str, Any]
) -> ToolActivity:
    """A provider tool's ``started`` :class:`ToolActivity`: its input, and as summary the
    search query or the fetched URL it was given."""
    summary = None
    if arguments:
        summary = str_or_none(arguments.get("query")) or str_or_none(arguments.get("url"))
    return ToolActivity(
        tool_id,
        name,
        "started",
        summary=summary,
        input=dict(arguments) if arguments else None,
        raw=raw,
    )


def span(start: Any, end: Any, offset: int = 0) -> tuple[int | None, int | None]:
    """``(offset + start, offset + end)`` for a provider span given in characters, or
    ``(None, None)`` when there is none: missing, negative, or empty (OpenRouter sends
    ``start_index = end_index = 0`` when it does not locate the citation)."""
    first, last = int_or_none(start), int_or_none(end)
    if first is None or last is None or first < 0 or last <= first:
        return None, None
    return offset + first, offset + last
