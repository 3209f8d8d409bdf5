"""Provider stream normalisers: one module per provider wire format.

Each module exposes a ``Normalizer`` class (I/O-free: ``feed(chunk)`` / ``close()`` returning
normalised :mod:`sse_llm._model` events), a ``matches(item)`` predicate that recognises the
provider's SDK objects or raw JSON chunks, and optionally ``translate(exc)``, which turns the
provider SDK's exceptions into :class:`~sse_llm.ProviderError`. Adding a provider means adding
a module here and a line to ``_REGISTRY``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from .._exceptions import ProviderError
from .._model import LLMEvent
from . import openai_chat

__all__ = ["Normalizer", "detect", "translate_exception"]


class Normalizer(Protocol):
    """Turns one provider's stream items into normalised events. Holds one stream's state."""

    def feed(self, item: Any) -> Iterable[LLMEvent]:
        """Events carried by one stream item (an SDK object or a JSON mapping)."""
        ...

    def close(self) -> Iterable[LLMEvent]:
        """Events owed at the end of the stream (pending tool calls, the final usage)."""
        ...


_REGISTRY: list[tuple[Callable[[Any], bool], Callable[[], Normalizer]]] = [
    (openai_chat.matches, openai_chat.Normalizer),
]

_TRANSLATORS: list[Callable[[BaseException], ProviderError | None]] = [
    openai_chat.translate,
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


def as_mapping(item: Any) -> Mapping[str, Any]:
    """A provider SDK object (pydantic) or a JSON mapping, as a mapping of its JSON fields."""
    if isinstance(item, Mapping):
        return item
    dump = getattr(item, "model_dump", None)
    if dump is not None:
        result: Mapping[str, Any] = dump(mode="json", exclude_unset=True)
        return result
    raise TypeError(f"not a provider stream item: {type(item).__name__}")
