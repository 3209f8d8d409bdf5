"""HTML-fragment streams for htmx: the answer arrives as ready-to-swap, safe HTML.

Two wire formats, both ``text/event-stream`` with one HTML fragment per SSE event:

- :class:`HTMLAppendFormat`: each event's data is only the new text, HTML-escaped, for a
  ``beforeend`` swap; bytes on the wire grow linearly with the answer.
- :class:`MarkdownFormat`: the answer is rendered server-side (markdown-it-py) and sanitised
  (nh3); renders are coalesced to at most one per ``interval`` seconds, completed Markdown
  blocks are sent once (out of band) and only the growing last block is re-sent (as the
  event's main content, for the page to swap into a tail element).

Both end a stream that completed (or failed, or was stopped by a shutdown) with an event that
leaves the element ``target`` holding the complete, sanitised message (``HTMLAppendFormat``
swaps it all in; ``MarkdownFormat`` adds what the page does not hold yet, see there), then a
named ``done`` event whose data is the end reason (``completed``, ``error``, ``shutdown``).

Works with htmx 4's ``hx-sse`` extension (an ``hx-post`` whose response is an event stream: each
unnamed event is swapped like a response, named ones become DOM events) and with htmx 2 +
``htmx-ext-sse`` (``sse-connect``/``sse-swap="message"``, ``sse-close="done"``). Out-of-band
swaps (``hx-swap-oob="<style>:#id"``) are processed per message by both.

Model output never reaches the page as markup: append mode escapes ``&``, ``<`` and ``>``;
Markdown goes through ``html=False`` parsing and an nh3 allow-list (see ``sse_llm._markdown``).
Fragments are rendered with Jinja2 templates whose context values are already HTML
(:class:`markupsafe.Markup`: escaped text or sanitised HTML), so a template renders safely with
or without autoescaping, and a Django template (``django.template.loader.get_template``) can
be passed instead. Text values (``text``, ``error``) are escaped quotes and all, for element
content or an attribute value; HTML values (``html``, ``sources``) are element content only.
"""

from __future__ import annotations

from ._extras import raise_missing_extra

try:
    from ._html import (
        ACTIVITY_LABELS,
        ACTIVITY_TEMPLATE,
        FINAL_TEMPLATE,
        SOURCES_TEMPLATE,
        HTMLAppendFormat,
        MarkdownFormat,
        SourceLink,
        Template,
        escape_text,
        wire_newlines,
    )
    from ._markdown import MarkdownRenderer
except ModuleNotFoundError as _missing:
    raise_missing_extra(_missing, __name__, "html", "jinja2", "markupsafe", "markdown_it", "nh3")

__all__ = [
    "ACTIVITY_LABELS",
    "ACTIVITY_TEMPLATE",
    "FINAL_TEMPLATE",
    "SOURCES_TEMPLATE",
    "HTMLAppendFormat",
    "MarkdownFormat",
    "MarkdownRenderer",
    "SourceLink",
    "Template",
    "escape_text",
    "wire_newlines",
]
