"""Provider stream normalisers: one module per provider wire format.

Each module exposes a ``Normalizer`` class (I/O-free: ``feed(chunk)`` / ``close()`` returning
normalised :mod:`sse_llm._model` events), a ``matches(item)`` predicate that recognises the
provider's SDK objects or raw JSON chunks, and optionally ``translate(exc)``, which turns the
provider SDK's exceptions into :class:`~sse_llm.ProviderError`. Adding a provider means adding
a module here and a line to ``_REGISTRY``.

The helpers the modules share (:func:`as_mapping`, :func:`error_fields`) are defined before the
modules are imported, so each module can import them at its top.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from .._exceptions import ProviderError
from .._model import LLMEvent, StreamError

__all__ = ["Normalizer", "as_mapping", "detect", "error_fields", "translate_exception"]


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


def _is_error_payload(item: Any) -> bool:
    """A bare ``{"error": ...}`` mapping: a stream whose very first item is the error."""
    return isinstance(item, Mapping) and bool(item.get("error"))


class _ErrorOnly:
    """Normaliser for a stream that starts with an error object (Groq ``event: error``,
    an Ollama ``{"error": ...}`` line, a Gemini error chunk): nothing else follows it."""

    def feed(self, item: Any) -> list[LLMEvent]:
        message, code = error_fields(as_mapping(item))
        return [StreamError(message or "The model provider reported an error.", code)]

    def close(self) -> list[LLMEvent]:
        return []


# The provider modules import the helpers above, so they are imported after them.
from . import (  # noqa: E402
    anthropic,
    databricks,
    gemini,
    langchain,
    ollama,
    openai_chat,
    openai_responses,
)

# Most specific predicates first: every Responses event has a ``type`` starting "response."
# (or is the ``error`` event with a ``sequence_number``), Anthropic's event types are a fixed
# set, chat chunks have ``object: chat.completion.chunk``; Gemini, Ollama and Databricks are
# told apart by their top-level keys; a bare error object comes last.
_REGISTRY: list[tuple[Callable[[Any], bool], Callable[[], Normalizer]]] = [
    (openai_responses.matches, openai_responses.Normalizer),
    (anthropic.matches, anthropic.Normalizer),
    (openai_chat.matches, openai_chat.Normalizer),
    (gemini.matches, gemini.Normalizer),
    (ollama.matches, ollama.Normalizer),
    (databricks.matches, databricks.Normalizer),
    (langchain.matches, langchain.Normalizer),
    (_is_error_payload, _ErrorOnly),
]

_TRANSLATORS: list[Callable[[BaseException], ProviderError | None]] = [
    openai_chat.translate,  # the openai SDK, for Chat Completions and the Responses API
    anthropic.translate,
]


def detect(item: Any) -> Normalizer | None:
    """A fresh normaliser for the provider whose stream ``item`` comes from, if known."""
    for matches, factory in _REGISTRY:
        if matches(item):
            return factory()
    return None


def translate_exception(exc: BaseException) -> ProviderError | None:
    """The provider error behind an SDK exception, if a provider module recognises it."""
    if isinstance(exc, ProviderError):
        return exc
    for translate in _TRANSLATORS:
        error = translate(exc)
        if error is not None:
            return error
    return None
