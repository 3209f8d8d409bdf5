"""sse-llm: correctly framed Server-Sent Events from any LLM token stream.

The core (events, encoder, decoder, normalised LLM events) is framework-free and does no I/O;
:class:`EventStream` is the ASGI pump; framework adapters live in ``sse_llm.starlette``,
``sse_llm.fastapi``; test helpers in ``sse_llm.testing``; a small client in ``sse_llm.client``.
"""

from __future__ import annotations

from ._decoder import SSEDecoder
from ._encoder import encode
from ._events import Comment, ServerSentEvent
from ._exceptions import (
    InvalidEventError,
    ProviderError,
    SSELLMError,
    UnsupportedServerError,
)
from ._formats import EventsFormat, Renderer, TextFormat, WireFormat
from ._model import (
    Finish,
    FinishReason,
    LLMEvent,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._pump import CompletionHook, EventStream, ShutdownSignal, Source
from ._result import EndReason, StreamResult

__version__ = "0.1.0"

__all__ = [
    "Comment",
    "CompletionHook",
    "EndReason",
    "EventStream",
    "EventsFormat",
    "Finish",
    "FinishReason",
    "InvalidEventError",
    "LLMEvent",
    "ProviderError",
    "ReasoningDelta",
    "Renderer",
    "SSEDecoder",
    "SSELLMError",
    "ServerSentEvent",
    "ShutdownSignal",
    "Source",
    "StreamError",
    "StreamResult",
    "TextDelta",
    "TextFormat",
    "ToolCall",
    "ToolCallDelta",
    "UnsupportedServerError",
    "Usage",
    "WireFormat",
    "__version__",
    "encode",
]
