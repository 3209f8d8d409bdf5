"""HTML-fragment formats, one private module per mode; :mod:`sse_llm.html` is the public
surface."""

from .append import HTMLAppendFormat
from .fragments import FINAL_TEMPLATE, Template, escape_text, wire_newlines
from .markdown import MarkdownFormat
from .sources import ACTIVITY_LABELS, ACTIVITY_TEMPLATE, SOURCES_TEMPLATE, SourceLink

__all__ = [
    "ACTIVITY_LABELS",
    "ACTIVITY_TEMPLATE",
    "FINAL_TEMPLATE",
    "SOURCES_TEMPLATE",
    "HTMLAppendFormat",
    "MarkdownFormat",
    "SourceLink",
    "Template",
    "escape_text",
    "wire_newlines",
]
