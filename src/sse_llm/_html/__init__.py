"""HTML-fragment formats, one private module per mode; :mod:`sse_llm.html` is the public
surface."""

from .append import HTMLAppendFormat
from .fragments import FINAL_TEMPLATE, Template, escape_text, wire_newlines
from .markdown import MarkdownFormat

__all__ = [
    "FINAL_TEMPLATE",
    "HTMLAppendFormat",
    "MarkdownFormat",
    "Template",
    "escape_text",
    "wire_newlines",
]
