"""Every wire format sse-llm can write, for the ``format=`` option of any binding.

- :class:`NamedEventsFormat` (the default): named SSE events (``delta``, ``reasoning``,
  ``tool_call``, ``done``, ``error``) with JSON data.
- :class:`TextFormat`: unnamed SSE events whose data is the text itself.
- :class:`TypedJSONFormat`: one JSON object per ``data:`` line, its kind in ``type``, then
  ``data: [DONE]`` (the shape of the Flask / Databricks streaming guides).
- :class:`OpenAIChatFormat`: OpenAI Chat Completions chunks, so any OpenAI SDK or
  OpenAI-compatible client reads the stream (sse-llm as an OpenAI-compatible proxy).
- :class:`AISDKFormat`: the Vercel AI SDK UI message stream v1 (``useChat``,
  ``readUIMessageStream``).
- HTML fragments for htmx: :mod:`sse_llm.html`.

A format is a stateless description shared by all requests; each stream gets a fresh
:class:`FormatWriter` from ``format.writer()`` that holds the stream's state (ids, open text
parts). Writers return ready-to-send units, one per event. JSON text is written with
non-ASCII characters as is; line breaks inside strings are JSON escapes, so every event is a
single ``data:`` line whatever the text.

``EventsFormat`` and ``JSONEventsFormat`` are the old names of :class:`NamedEventsFormat` and
:class:`TypedJSONFormat`; they still work for one release and warn (``DeprecationWarning``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from ._deprecation import aliases
from ._formats import (
    AISDKFormat,
    FormatWriter,
    NamedEventsFormat,
    OpenAIChatFormat,
    TextFormat,
    TypedJSONFormat,
    Units,
    WireFormat,
    WriterBase,
)

__all__ = [
    "AISDKFormat",
    "FormatWriter",
    "NamedEventsFormat",
    "OpenAIChatFormat",
    "TextFormat",
    "TypedJSONFormat",
    "Units",
    "WireFormat",
    "WriterBase",
]

# As in sse_llm/__init__.py: no module __getattr__ for type checkers (it makes any name Any).
if TYPE_CHECKING:
    EventsFormat: TypeAlias = NamedEventsFormat
    JSONEventsFormat: TypeAlias = TypedJSONFormat
    Renderer: TypeAlias = FormatWriter
else:
    __getattr__ = aliases(
        __name__,
        {
            "EventsFormat": ("NamedEventsFormat", NamedEventsFormat),
            "JSONEventsFormat": ("TypedJSONFormat", TypedJSONFormat),
            "Renderer": ("FormatWriter", FormatWriter),
        },
    )
