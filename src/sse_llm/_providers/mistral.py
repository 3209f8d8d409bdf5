"""The ``mistralai`` SDK's own stream (``client.chat.stream(...)``, ``stream_async(...)``).

Mistral's wire format is OpenAI's Chat Completions chunks (read by :mod:`.openai_chat`, which
also maps Mistral's typed ``thinking`` and ``reference`` content parts). The SDK wraps each
chunk in a ``CompletionEvent`` whose ``data`` is the ``CompletionChunk``; this module unwraps
it (source: the SDK's ``models/completionevent.py``, generated from Mistral's OpenAPI spec), and
turns the SDK's HTTP errors into :class:`~sse_llm.ProviderError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .._exceptions import ProviderError
from .._model import LLMEvent
from . import openai_chat
from ._common import sdk_class, status_error


def matches(item: Any) -> bool:
    """A ``mistralai`` ``CompletionEvent`` carrying a chat chunk in ``.data``."""
    return type(item).__name__ == "CompletionEvent" and openai_chat.matches(
        getattr(item, "data", None)
    )


class Normalizer(openai_chat.Normalizer):
    """:class:`~.openai_chat.Normalizer` for the chunks inside ``CompletionEvent`` items."""

    def feed(self, item: Any) -> list[LLMEvent]:
        return super().feed(item.data)


def translate(exc: BaseException) -> ProviderError | None:
    """The provider's message from a ``mistralai`` SDK HTTP error (``SDKError``,
    ``HTTPValidationError``: ``status_code`` and the response's text in ``body``).

    The SDK's own message quotes the whole body, which may be a proxy's HTML page: only a JSON
    error body (``{"object": "error", "message", "type", "code"}``) is the provider's wording.
    """
    if sdk_class(exc, "mistralai") is None:
        return None
    status = getattr(exc, "status_code", None)
    body = getattr(exc, "body", None)
    if not isinstance(status, int) or not isinstance(body, str):
        return None  # not an answer from the provider
    try:
        payload: Any = json.loads(body)
    except ValueError:
        payload = None
    return status_error(status, payload if isinstance(payload, Mapping) else None)
