"""The wire formats, one private module per protocol; :mod:`sse_llm.formats` is the public
surface."""

from .aisdk import AISDKFormat
from .base import (
    NOTHING,
    FormatWriter,
    Units,
    WireFormat,
    WriterBase,
    activity_fields,
    data_event,
    done_fields,
    dumps,
    json_string,
    source_fields,
    tool_call_fields,
    usage_json,
)
from .named import NamedEventsFormat
from .openai_chat import OpenAIChatFormat
from .text import TextFormat
from .typed_json import TypedJSONFormat

__all__ = [
    "NOTHING",
    "AISDKFormat",
    "FormatWriter",
    "NamedEventsFormat",
    "OpenAIChatFormat",
    "TextFormat",
    "TypedJSONFormat",
    "Units",
    "WireFormat",
    "WriterBase",
    "activity_fields",
    "data_event",
    "done_fields",
    "dumps",
    "json_string",
    "source_fields",
    "tool_call_fields",
    "usage_json",
]
