"""The normalised LLM stream: a few small typed events every provider maps onto.

Every source (a plain text generator, the OpenAI, Anthropic, Gemini, Mistral or Ollama
streams, LangChain) is turned into these, and every wire format renders only these. Field
names follow the providers' shared vocabulary: ``delta``, ``finish_reason``, ``usage``,
tool call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = [
    "Finish",
    "FinishReason",
    "LLMEvent",
    "ReasoningDelta",
    "StreamError",
    "TextDelta",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
]

#: The normalised finish reasons (OpenAI Chat Completions' vocabulary, plus ``error`` and
#: ``other``). The provider's own value is kept in :attr:`Finish.raw_reason`.
FinishReason: TypeAlias = Literal[
    "stop", "length", "tool_calls", "content_filter", "error", "other"
]


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
    """A complete tool call, its argument fragments joined.

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
class Usage:
    """Token counts, in tokens. ``None`` where the provider does not report a count.

    Attributes:
        input_tokens: prompt tokens (OpenAI ``prompt_tokens``, Gemini ``promptTokenCount``).
        output_tokens: generated tokens (OpenAI ``completion_tokens``).
        total_tokens: as reported, else ``None``.
        reasoning_tokens: the part of ``output_tokens`` spent on reasoning, if reported.
        raw: the provider's usage object as received.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def as_dict(self) -> dict[str, int]:
        """The counts that are known, as ``{"input_tokens": 12, ...}``."""
        out: dict[str, int] = {}
        for key in ("input_tokens", "output_tokens", "total_tokens", "reasoning_tokens"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class Finish:
    """The model finished its answer.

    Attributes:
        reason: the normalised reason (see :data:`FinishReason`).
        raw_reason: the provider's own value (``"end_turn"``, ``"MAX_TOKENS"`` ...), or
            ``None`` when the stream ended without one.
    """

    reason: FinishReason
    raw_reason: str | None = None


@dataclass(frozen=True, slots=True)
class StreamError:
    """The provider reported an error inside the stream; nothing more will come.

    Attributes:
        message: text safe to show the end user.
        code: the provider's error code or type, when given.
    """

    message: str
    code: str | None = None


LLMEvent: TypeAlias = (
    TextDelta | ReasoningDelta | ToolCallDelta | ToolCall | Usage | Finish | StreamError
)
