"""What both HTML-fragment formats share: templates, escaping, options, the base writer."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from jinja2 import Environment
from markupsafe import Markup, escape

from .._encoder import encode_data
from .._formats import NOTHING, Units, WriterBase
from .._markdown import MarkdownRenderer
from .._model import Citation, LLMEvent, ToolActivity
from .._result import StreamResult
from .sources import ACTIVITY_TEMPLATE, SOURCES_TEMPLATE, Sources, activity_context

__all__ = [
    "ERROR_TEMPLATE",
    "FINAL_TEMPLATE",
    "FormatOptions",
    "FragmentWriter",
    "Template",
    "compile_template",
    "escape_text",
    "template_text",
    "wire_newlines",
]


class Template(Protocol):
    """What renders a fragment: ``jinja2.Template`` or a Django backend template (from
    ``django.template.loader.get_template``); both take a context mapping."""

    def render(self, context: Mapping[str, Any]) -> str: ...


_ENV = Environment(autoescape=True, keep_trailing_newline=False)

#: The error message after the answer, in both last fragments below.
ERROR_TEMPLATE = '{% if error %}<p class="sse-llm-error" role="alert">{{ error }}</p>{% endif %}'
#: The last fragment: the complete message, swapped into ``#target``. Context: ``target`` (the
#: id), ``html`` (sanitised message), ``sources`` (the rendered sources list, or ``""``),
#: ``error`` (escaped message or ``""``), ``reason``.
FINAL_TEMPLATE = (
    '<div hx-swap-oob="innerHTML:#{{ target }}">{{ html }}{{ sources }}' + ERROR_TEMPLATE + "</div>"
)
#: An activity line, added at the end of ``#target`` (after the tail element, or after the
#: element the text streams into), and its removal.
_ACTIVITY_ADD = (
    '<div hx-swap-oob="beforeend:#{target}"><div id="{id}" class="sse-llm-activity"'
    ' role="status">{line}</div></div>'
)
_ACTIVITY_REMOVE = '<div hx-swap-oob="delete:#{id}"></div>'
_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,127}")
_EVENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")


def escape_text(text: str) -> str:
    """Escape text for an HTML text node: ``&``, ``<`` and ``>`` (quotes are harmless there and
    escaping them would only add bytes)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def template_text(text: str) -> Markup:
    """Text for a template's context: quotes escaped too, so a template may put it in an
    attribute value (``title="{{ text }}"``) as well as between tags."""
    # str(): Markup's own replace would escape the "&#10;" it is given.
    return Markup(wire_newlines(str(escape(text))))


def wire_newlines(html: str) -> str:
    """``html`` with every line break written as ``&#10;``.

    In an SSE event each line break of the data costs a new ``data:`` line (7 bytes); the
    character reference is 5 and parses to the same newline, in text and in attribute values
    alike. CR and CRLF become LF first, as the HTML parser would make them. Only for model
    text and sanitised HTML (nh3 never writes a line break inside a tag), never for templates.
    """
    if "\r" in html:
        html = html.replace("\r\n", "\n").replace("\r", "\n")
    return html.replace("\n", "&#10;")


def compile_template(value: Template | str | None, default: str) -> Template:
    if value is None:
        value = default
    if isinstance(value, str):
        compiled: Any = _ENV.from_string(value)
        return compiled  # type: ignore[no-any-return]
    return value


def _check_id(name: str, value: str | None) -> None:
    if value is not None and not _ID.fullmatch(value):
        raise ValueError(f"{name} must be an HTML id ([A-Za-z][A-Za-z0-9_-]*), got {value!r}")


class FormatOptions:
    """Options shared by both formats."""

    media_type = "text/event-stream"
    headers: Mapping[str, str] = {}
    keepalive = b":\n"

    def __init__(
        self,
        target: str | None,
        *,
        prelude: str | None,
        interval: float,
        final_template: Template | str | None,
        done_event: str,
        event_name: str | None,
        markdown: MarkdownRenderer | None,
        clock: Callable[[], float],
        sources_template: Template | str | None = None,
        activity_template: Template | str | None = None,
    ) -> None:
        _check_id("target", target)
        if not _EVENT_NAME.fullmatch(done_event):
            raise ValueError(f"done_event must be a plain event name, got {done_event!r}")
        if event_name is not None and not _EVENT_NAME.fullmatch(event_name):
            raise ValueError(f"event_name must be a plain event name, got {event_name!r}")
        if event_name == done_event:
            raise ValueError("event_name and done_event must differ")
        if not 0 <= interval < float("inf"):  # NaN too
            raise ValueError(f"interval must be a finite number >= 0 of seconds, got {interval}")
        self.target = target
        self.prelude = prelude
        self.interval = interval
        self.final_template: Template = compile_template(final_template, FINAL_TEMPLATE)
        self.custom_final: bool = final_template is not None
        self.done_event = done_event
        self.event_name = event_name
        self.markdown = markdown
        self.clock = clock
        self.sources_template: Template = compile_template(sources_template, SOURCES_TEMPLATE)
        self.activity_template: Template = compile_template(activity_template, ACTIVITY_TEMPLATE)


class FragmentWriter(WriterBase):
    def __init__(self, fmt: FormatOptions) -> None:
        self.fmt = fmt
        self.parts: list[str] = []
        self.error_message: str | None = None
        self.last_render = -float("inf")
        self.event_name = fmt.event_name
        # While the model is silent the pump calls flush() at least this often, so text held
        # back to coalesce renders goes out within about one interval, not with the next token.
        self.flush_interval: float | None = fmt.interval or None
        self.sources = Sources()
        self.activities: dict[str, str] = {}  # provider tool id -> id of its line, while shown
        self.activity_count = 0
        self.end_failed = False  # the format's own end raised: the next one is plain_end

    def data(self, fragment: str) -> bytes:
        """One fragment event (unnamed, or ``event_name``)."""
        return encode_data(fragment, self.event_name)

    def start(self) -> Units:
        return (self.data(self.fmt.prelude),) if self.fmt.prelude else NOTHING

    def error(self, message: str, code: str | None) -> Units:
        # Shown in the final fragment, which ``end`` sends right after.
        self.error_message = message
        return NOTHING

    def event(self, event: LLMEvent) -> Units:
        """Sources are kept for the last fragment; a provider tool shows a line while it runs.
        Without a ``target`` there is no element to put either in: both are dropped."""
        if self.fmt.target is None:
            return NOTHING
        if isinstance(event, Citation):
            self.sources.add(event)
        elif isinstance(event, ToolActivity):
            return self.activity(event)
        return NOTHING

    def activity(self, activity: ToolActivity) -> Units:
        """The activity line of a tool that started; its removal when the tool ended. A tool
        reported only once it ended (Gemini) never had a line: nothing is sent. Text held back
        goes first, so the page shows what the model wrote before the tool ran."""
        line_id = self.activities.get(activity.id)
        if activity.status != "started":
            if line_id is None:
                return NOTHING
            del self.activities[activity.id]
            html = _ACTIVITY_REMOVE.format(id=line_id)
        else:
            if line_id is not None:
                return NOTHING  # already shown
            line = self.fmt.activity_template.render(activity_context(activity))
            if not line:
                return NOTHING  # an empty template shows no activity
            self.activity_count += 1
            line_id = f"{self.fmt.target}-activity-{self.activity_count}"
            self.activities[activity.id] = line_id
            html = _ACTIVITY_ADD.format(target=self.fmt.target, id=line_id, line=line)
        return (*self.drain(), self.data(self.with_main(html)))

    def with_main(self, oob: str) -> str:
        """An event made only of out-of-band swaps: what the page swaps in as its main content
        must stay what it is (the Markdown writer re-sends the tail)."""
        return oob

    def open_activity_removals(self) -> str:
        """Deletes for the activity lines still shown (a tool whose end never came), placed
        before the last fragment's own swaps; ``""`` if none."""
        removals = "".join(_ACTIVITY_REMOVE.format(id=i) for i in self.activities.values())
        self.activities.clear()
        return removals

    def sources_html(self) -> Markup:
        """The rendered sources list, or ``""`` when the answer cited nothing."""
        if not self.sources.links:
            return Markup("")
        context = {"sources": self.sources.links, "target": self.fmt.target}
        return Markup(self.fmt.sources_template.render(context))

    def message_html(self, text: str) -> Markup:
        markdown = self.fmt.markdown
        if markdown is not None:
            return Markup(wire_newlines(markdown.render(text)))
        return Markup(wire_newlines(escape_text(text)))

    def text_so_far(self) -> str:
        """The whole answer text (the writer keeps its own: the result may keep none)."""
        text = "".join(self.parts)
        self.parts = [text]
        return text

    def end(self, result: StreamResult) -> Units:
        if result.reason not in ("completed", "error", "shutdown"):
            return NOTHING  # the client is gone: nothing can be sent
        if self.end_failed:
            return self.plain_end(result)
        try:
            return self.write_end(result)
        except Exception:
            # A custom template or the Markdown renderer raised. The engine ends the stream as
            # an error and asks for the end once more: that one uses only the defaults, so the
            # page still gets the whole answer, the error and ``done`` (without it, htmx would
            # leave the stream open and an ``EventSource`` would reconnect, asking again).
            self.end_failed = True
            raise

    def plain_end(self, result: StreamResult) -> Units:
        """The end with the default templates only: the answer as escaped text."""
        if self.fmt.target is None:
            return self.appended_end(result)
        html = Markup(wire_newlines(escape_text(self.text_so_far())))
        return self.final(result, html, compile_template(None, FINAL_TEMPLATE), Markup(""))

    def write_end(self, result: StreamResult) -> Units:
        """The format's own end (called for a stream whose client is still there)."""
        out = list(self.drain_end())
        if self.fmt.target is None:
            out.extend(self.appended_end(result))
        else:
            out.extend(self.final(result, self.message_html(self.text_so_far())))
        return out

    def appended_end(self, result: StreamResult) -> Units:
        """``done``, after the error's message if there is one: with no final fragment to carry
        it, the message is appended like text, so that a cut answer does not end without
        saying why. Compiled here: errors are rare."""
        out = []
        if self.error_message:
            error = compile_template(None, ERROR_TEMPLATE)
            out.append(self.data(error.render({"error": template_text(self.error_message)})))
        out.append(encode_data(result.reason, self.fmt.done_event))
        return out

    def final(
        self,
        result: StreamResult,
        html: Markup,
        template: Template | None = None,
        sources: Markup | None = None,
    ) -> Units:
        """The final fragment (the complete message ``html`` into ``#target``) and ``done``;
        ``template`` and ``sources`` default to the format's own."""
        fmt = self.fmt
        context = {
            "target": fmt.target,
            "html": html,
            "sources": self.sources_html() if sources is None else sources,
            "error": template_text(self.error_message or ""),
            "reason": result.reason,
        }
        template = fmt.final_template if template is None else template
        body = template.render(context)  # first: if it raises, plain_end removes them
        final = self.open_activity_removals() + body
        return (self.data(final), encode_data(result.reason, fmt.done_event))

    def due(self) -> bool:
        """The interval since the last render has passed."""
        return self.fmt.clock() - self.last_render >= self.fmt.interval

    def flush(self) -> Units:
        """Held text, if one ``interval`` has passed since the last event; else nothing.

        Called by the pump while the source is silent (every ``flush_interval`` seconds)."""
        return self.drain() if self.due() else NOTHING

    def drain(self) -> Units:
        """Everything held back, now."""
        return NOTHING

    def drain_end(self) -> Units:
        """Everything held back, at the end: no more text comes."""
        return self.drain()
