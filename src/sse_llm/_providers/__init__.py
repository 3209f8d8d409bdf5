"""Provider stream normalisers: one module per provider wire format.

Each module exposes a ``Normalizer`` class (I/O-free: ``feed(chunk)`` / ``close()`` returning
normalised :mod:`sse_llm._model` events), a ``matches(item)`` predicate that recognises the
provider's SDK objects or raw JSON chunks, and optionally ``translate(exc)``, which turns the
provider SDK's exceptions into :class:`~sse_llm.ProviderError`. Adding a provider means adding
a module here and a line to ``_REGISTRY``. The helpers the modules share live in
:mod:`._common`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._exceptions import ProviderError
from . import (
    anthropic,
    databricks,
    gemini,
    langchain,
    mistral,
    ollama,
    openai_chat,
    openai_responses,
)
from ._common import (
    ErrorOnly,
    Normalizer,
    as_mapping,
    error_fields,
    for_end_user,
    is_error_payload,
)

__all__ = [
    "Normalizer",
    "as_mapping",
    "detect",
    "error_fields",
    "for_end_user",
    "translate_exception",
]

Factory = Callable[[int | None], Normalizer]

# Most specific predicates first: every Responses event has a ``type`` starting "response."
# (or is the ``error`` event with a ``sequence_number``), Anthropic's event types are a fixed
# set, chat chunks have ``object: chat.completion.chunk``; Gemini, Ollama and Databricks are
# told apart by their top-level keys; a bare error object comes last. Only the formats that
# can carry several choices use ``choice``.
_REGISTRY: list[tuple[Callable[[Any], bool], Factory]] = [
    (openai_responses.matches, lambda choice: openai_responses.Normalizer()),
    (anthropic.matches, lambda choice: anthropic.Normalizer()),
    (openai_chat.matches, lambda choice: openai_chat.Normalizer(choice=choice)),
    (openai_chat.matches_helper_event, lambda choice: openai_chat.HelperNormalizer(choice=choice)),
    (mistral.matches, lambda choice: mistral.Normalizer(choice=choice)),
    (gemini.matches, lambda choice: gemini.Normalizer(choice=choice)),
    (ollama.matches, lambda choice: ollama.Normalizer()),
    (databricks.matches, lambda choice: databricks.Normalizer()),
    (langchain.matches, lambda choice: langchain.Normalizer()),
    (is_error_payload, lambda choice: ErrorOnly()),
]

_TRANSLATORS: list[Callable[[BaseException], ProviderError | None]] = [
    openai_chat.translate,  # the openai SDK, for Chat Completions and the Responses API
    anthropic.translate,
    gemini.translate,  # google-genai
    ollama.translate,
    mistral.translate,  # mistralai
]


def detect(item: Any, *, choice: int | None = None) -> Normalizer | None:
    """A fresh normaliser for the provider whose stream ``item`` comes from, if known.

    Args:
        item: the stream's first item (an SDK object or a JSON mapping).
        choice: which choice to stream when the provider streams several (OpenAI-compatible
            ``n > 1``: ``choices[].index``; Gemini ``candidateCount > 1``:
            ``candidates[].index``). ``None`` (the default) streams a single-choice answer
            and ends the stream with an :class:`~sse_llm.ErrorEvent` (code
            ``"multiple_choices"``) at the first chunk of any other choice. Formats with
            one answer per stream (Anthropic, Responses, Ollama, LangChain ...) ignore it.
    """
    for matches, factory in _REGISTRY:
        if matches(item):
            return factory(choice)
    return None


def translate_exception(exc: BaseException) -> ProviderError | None:
    """The provider error behind an SDK exception, if a provider module recognises it: the
    exception itself, or the one it was raised from (``raise ... from``: LangChain's
    ``ChatGoogleGenerativeAI`` wraps the SDK's errors so), at most three levels down."""
    cause: BaseException | None = exc
    for _ in range(4):
        if cause is None:
            break
        if isinstance(cause, ProviderError):
            return cause
        for translate in _TRANSLATORS:
            error = translate(cause)
            if error is not None:
                return error
        cause = cause.__cause__
    return None
