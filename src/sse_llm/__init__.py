"""sse-llm: correctly framed Server-Sent Events from any LLM token stream.

- The core does no I/O and imports no web framework: SSE values and their encoder/decoder
  (:class:`ServerSentEvent`, :func:`encode`, :class:`SSEDecoder`), the normalised LLM events
  (:class:`TextDelta`, :class:`ToolCall`, :class:`Finish`, :class:`Usage` ...), and
  :class:`StreamEngine`, which turns any source's items into a wire format's bytes.
- One pump drives the engine for every transport: :class:`EventStream` (ASGI), and the
  framework bindings ``sse_llm.starlette``, ``sse_llm.fastapi``, ``sse_llm.django``,
  ``sse_llm.flask`` (each with its ``SSEResponse``), ``sse_llm.websocket``, and the resumable
  streams of ``sse_llm.resume``. :class:`StreamOptions` are the same everywhere.
- Wire formats: ``sse_llm.formats`` (JSON events, plain text, OpenAI chunks, the Vercel AI SDK)
  and ``sse_llm.html`` (escaped or sanitised Markdown fragments for htmx).
- Reading provider streams without their SDK: ``sse_llm.sources``; an SSE client:
  ``sse_llm.client``; testing endless streams: ``sse_llm.testing`` (and ``sse_llm.pytest_plugin``,
  loaded by pytest, which runs ``async def`` tests).
- The non-streaming fallback for a plain JSON endpoint: :func:`collect` drains any source
  through the same normalisation, :func:`result_json` writes the answer as JSON.

Install one extra per binding (``pip install 'sse-llm[fastapi]'``); importing a binding whose
extra is missing raises an ``ImportError`` naming it. Documentation:
https://sse-llm.readthedocs.io/
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from ._asgi import EventStream
from ._collect import collect, result_json
from ._decoder import SSEDecoder
from ._deprecation import aliases
from ._encoder import encode
from ._engine import StreamEngine
from ._events import Comment, ServerSentEvent
from ._exceptions import (
    EventTooLargeError,
    InvalidEventError,
    NotEventStreamError,
    ProviderError,
    SSELLMError,
    UnsupportedServerError,
)
from ._formats import FormatWriter, NamedEventsFormat, TextFormat, WireFormat
from ._model import (
    Citation,
    CitationKind,
    ErrorEvent,
    Finish,
    FinishReason,
    LLMEvent,
    ReasoningDelta,
    TextDelta,
    ToolActivity,
    ToolActivityStatus,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._options import CollectOptions, StreamOptions
from ._result import EndReason, StreamResult
from ._shutdown import GracefulShutdown, ShutdownOptions
from ._types import CompletionHook, ShutdownSignal, Source

__version__ = "0.2.0.dev0"

__all__ = [
    "Citation",
    "CitationKind",
    "CollectOptions",
    "Comment",
    "CompletionHook",
    "EndReason",
    "ErrorEvent",
    "EventStream",
    "EventTooLargeError",
    "Finish",
    "FinishReason",
    "FormatWriter",
    "GracefulShutdown",
    "InvalidEventError",
    "LLMEvent",
    "NamedEventsFormat",
    "NotEventStreamError",
    "ProviderError",
    "ReasoningDelta",
    "SSEDecoder",
    "SSELLMError",
    "ServerSentEvent",
    "ShutdownOptions",
    "ShutdownSignal",
    "Source",
    "StreamEngine",
    "StreamOptions",
    "StreamResult",
    "TextDelta",
    "TextFormat",
    "ToolActivity",
    "ToolActivityStatus",
    "ToolCall",
    "ToolCallDelta",
    "UnsupportedServerError",
    "Usage",
    "WireFormat",
    "__version__",
    "collect",
    "encode",
    "result_json",
]

# A module __getattr__ seen by a type checker makes every name Any, a misspelt one included:
# type checkers get the old names as plain aliases instead.
if TYPE_CHECKING:
    EventsFormat: TypeAlias = NamedEventsFormat
    Renderer: TypeAlias = FormatWriter
    StreamError: TypeAlias = ErrorEvent
else:
    __getattr__ = aliases(
        __name__,
        {
            "EventsFormat": ("NamedEventsFormat", NamedEventsFormat),
            "Renderer": ("FormatWriter", FormatWriter),
            "StreamError": ("ErrorEvent", ErrorEvent),
        },
    )
