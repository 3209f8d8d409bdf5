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
be passed instead.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from jinja2 import Environment
from markupsafe import Markup

from ._encoder import encode_data
from ._formats import Renderer
from ._markdown import MarkdownRenderer
from ._model import LLMEvent, TextDelta
from ._result import StreamResult

__all__ = [
    "FINAL_TEMPLATE",
    "HTMLAppendFormat",
    "MarkdownFormat",
    "MarkdownRenderer",
    "Template",
    "escape_text",
    "wire_newlines",
]


class Template(Protocol):
    """What renders a fragment: ``jinja2.Template`` or a Django backend template (from
    ``django.template.loader.get_template``); both take a context mapping."""

    def render(self, context: Mapping[str, Any]) -> str: ...


_ENV = Environment(autoescape=True, keep_trailing_newline=False)

#: The error message after the answer, in both last fragments below.
_ERROR = '{% if error %}<p class="sse-llm-error" role="alert">{{ error }}</p>{% endif %}'
#: The last fragment: the complete message, swapped into ``#target``. Context: ``target`` (the
#: id), ``html`` (sanitised message), ``error`` (escaped message or ``""``), ``reason``.
FINAL_TEMPLATE = '<div hx-swap-oob="innerHTML:#{{ target }}">{{ html }}' + _ERROR + "</div>"
#: Markdown mode, first event: empties ``#target`` and puts the tail element in it.
_SETUP_TEMPLATE = (
    '<div hx-swap-oob="innerHTML:#{{ target }}">'
    '<div id="{{ tail_id }}" class="sse-llm-tail"></div></div>'
)
#: Markdown mode: settled blocks go in before the tail element, the tail replaces its content
#: (out of band only with ``oob_tail=True`` or when it is empty: by default the tail HTML is the
#: event's main content, which the page swaps into the tail element).
_BLOCKS_TEMPLATE = '<div hx-swap-oob="beforebegin:#{{ tail_id }}">{{ html }}</div>'
_TAIL_TEMPLATE = '<div hx-swap-oob="innerHTML:#{{ tail_id }}">{{ html }}</div>'
#: Markdown mode, last event when the client already holds every settled block: the last block
#: (and the error, if any) goes in before the tail element, which is then removed, leaving
#: ``#target`` with exactly the render of the whole message.
_REST_TEMPLATE = (
    '{% if html or error %}<div hx-swap-oob="beforebegin:#{{ tail_id }}">{{ html }}'
    + _ERROR
    + '</div>{% endif %}<div hx-swap-oob="delete:#{{ tail_id }}"></div>'
)

#: Markdown mode: the longest wait between re-sends of a growing tail is ``refresh`` seconds,
#: or its length over this many characters per second if longer (see ``worth_resending``).
_TAIL_CHARS_PER_SECOND = 1000.0

_ID = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,127}")
_EVENT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,63}")


def escape_text(text: str) -> str:
    """Escape text for an HTML text node: ``&``, ``<`` and ``>`` (quotes are harmless there and
    escaping them would only add bytes)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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


def _template(value: Template | str | None, default: str) -> Template:
    if value is None:
        value = default
    if isinstance(value, str):
        compiled: Any = _ENV.from_string(value)
        return compiled  # type: ignore[no-any-return]
    return value


def _check_id(name: str, value: str | None) -> None:
    if value is not None and not _ID.fullmatch(value):
        raise ValueError(f"{name} must be an HTML id ([A-Za-z][A-Za-z0-9_-]*), got {value!r}")


class _Base:
    """Options shared by both formats."""

    media_type = "text/event-stream"
    headers: Mapping[str, str] = {}
    heartbeat = b":\n"

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
    ) -> None:
        _check_id("target", target)
        if not _EVENT_NAME.fullmatch(done_event):
            raise ValueError(f"done_event must be a plain event name, got {done_event!r}")
        if event_name is not None and not _EVENT_NAME.fullmatch(event_name):
            raise ValueError(f"event_name must be a plain event name, got {event_name!r}")
        if event_name == done_event:
            raise ValueError("event_name and done_event must differ")
        if interval < 0:
            raise ValueError(f"interval must be >= 0 seconds, got {interval}")
        self.target = target
        self.prelude = prelude
        self.interval = interval
        self.final_template = _template(final_template, FINAL_TEMPLATE)
        self.custom_final = final_template is not None
        self.done_event = done_event
        self.event_name = event_name
        self.markdown = markdown
        self.clock = clock


class _BaseRenderer:
    def __init__(self, fmt: _Base) -> None:
        self.fmt = fmt
        self.parts: list[str] = []
        self.error_message: str | None = None
        self.last_render = -float("inf")
        self.event_name = fmt.event_name
        # The pump's optional flush hook (see sse_llm._formats.Renderer): while the model is
        # silent, the pump calls flush() at least this often, so text held back to coalesce
        # renders goes out within about one interval instead of waiting for the next token.
        self.flush_interval: float | None = fmt.interval or None

    def data(self, fragment: str) -> bytes:
        """One fragment event (unnamed, or ``event_name``)."""
        return encode_data(fragment, self.event_name)

    def start(self) -> bytes:
        return self.data(self.fmt.prelude) if self.fmt.prelude else b""

    def error(self, message: str, code: str | None) -> bytes:
        # Shown in the final fragment, which ``end`` sends right after.
        self.error_message = message
        return b""

    def message_html(self, text: str) -> Markup:
        markdown = self.fmt.markdown
        if markdown is not None:
            return Markup(wire_newlines(markdown.render(text)))
        return Markup(wire_newlines(escape_text(text)))

    def end(self, result: StreamResult) -> bytes:
        if result.reason not in ("completed", "error", "shutdown"):
            return b""  # the client is gone: nothing can be sent
        out = self.drain()
        if self.fmt.target is None:
            return out + encode_data(result.reason, self.fmt.done_event)
        return out + self.final(result, self.message_html(result.text))

    def final(self, result: StreamResult, html: Markup) -> bytes:
        """The final fragment (the complete message ``html`` into ``#target``) and ``done``."""
        fmt = self.fmt
        context = {
            "target": fmt.target,
            "html": html,
            "error": Markup(escape_text(self.error_message or "")),
            "reason": result.reason,
        }
        return self.data(fmt.final_template.render(context)) + encode_data(
            result.reason, fmt.done_event
        )

    def due(self) -> bool:
        """The interval since the last render has passed."""
        return self.fmt.clock() - self.last_render >= self.fmt.interval

    def flush(self) -> bytes:
        """Held text, if one ``interval`` has passed since the last event; else ``b""``.

        Called by the pump while the source is silent (every ``flush_interval`` seconds)."""
        return self.drain() if self.due() else b""

    def drain(self) -> bytes:
        """Everything held back, now."""
        return b""


class _AppendRenderer(_BaseRenderer):
    def __init__(self, fmt: HTMLAppendFormat) -> None:
        super().__init__(fmt)
        self.pending = ""  # text not sent yet: whitespace-only tokens, or coalesced ones
        self.token_template = fmt.token_template

    def text(self, text: str) -> bytes:
        self.parts.append(text)
        pending = self.pending + text
        # htmx 4 skips a main swap whose fragment is only whitespace (swapEmpty:false), so a
        # space or newline token would be lost: it travels with the next visible token.
        if pending.isspace() or not self.due():
            self.pending = pending
            return b""
        self.pending = ""
        return self._send(pending)

    def _send(self, text: str) -> bytes:
        self.last_render = self.fmt.clock()
        escaped = wire_newlines(escape_text(text))
        if self.token_template is None:
            return self.data(escaped)
        return self.data(self.token_template.render({"text": Markup(escaped)}))

    def event(self, event: LLMEvent) -> bytes:
        if type(event) is TextDelta:
            return self.text(event.text)
        return b""

    def drain(self) -> bytes:
        pending = self.pending
        if not pending or pending.isspace():
            return b""  # kept: it goes out with the next visible text
        self.pending = ""
        return self._send(pending)


class HTMLAppendFormat(_Base):
    """Each text delta as escaped HTML text, for ``hx-swap="beforeend"``.

    Args:
        target: the id of the answer element. When set, the stream ends by swapping the complete
            message into it (escaped text, or the sanitised Markdown render if ``markdown``);
            ``None`` sends no final fragment.
        prelude: trusted HTML sent as the first event (e.g. an out-of-band swap that inserts
            the message pair the answer streams into). Never put model output here.
        interval: seconds; deltas arriving sooner than this after the previous event are held
            and sent together (default 0.1: at most ten events a second, which a reader cannot
            tell from one per token and which saves the per-event framing; 0 = every delta is
            an event). Held text goes out with the next
            delta after the interval or, if the model pauses, by the pump's flush within about
            one more interval (at most ~2 x ``interval`` after it arrived), or at the end.
        markdown: render the final message as Markdown with this renderer; pass
            ``MarkdownRenderer()`` for the default.
        token_template: template for one delta (context ``text``: escaped); default: the
            escaped text itself, the fewest bytes.
        final_template: template for the final fragment, see :data:`FINAL_TEMPLATE`.
        done_event: name of the closing event (``sse-close="done"`` / ``hx-sse:close``).
        event_name: the SSE event name of the fragment events; ``None`` (default) sends them
            unnamed, which htmx 4's ``hx-sse`` swaps (it turns *named* events into DOM events
            instead) and which htmx 2's ``htmx-ext-sse`` receives as ``sse-swap="message"``.
            Set a name only for htmx 2 pages that route several streams by name
            (``sse-swap="<event_name>"``).
        clock: seconds, monotonic (tests and benchmarks inject one).

    Whitespace-only deltas are held and sent with the next visible one: htmx 4 drops a main
    swap whose content is only whitespace. Style the element with ``white-space: pre-wrap`` so
    newlines show while streaming.

    Raises:
        ValueError: ``target`` is not a plain HTML id, ``done_event`` or ``event_name`` not a
            plain event name (or both the same), or ``interval`` negative.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        prelude: str | None = None,
        interval: float = 0.1,
        markdown: MarkdownRenderer | None = None,
        token_template: Template | str | None = None,
        final_template: Template | str | None = None,
        done_event: str = "done",
        event_name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            target,
            prelude=prelude,
            interval=interval,
            final_template=final_template,
            done_event=done_event,
            event_name=event_name,
            markdown=markdown,
            clock=clock,
        )
        self.token_template = None if token_template is None else _template(token_template, "")

    def renderer(self) -> Renderer:
        return _AppendRenderer(self)


class _MarkdownRenderer(_BaseRenderer):
    fmt: MarkdownFormat

    def __init__(self, fmt: MarkdownFormat) -> None:
        super().__init__(fmt)
        self.md: MarkdownRenderer = fmt.markdown  # type: ignore[assignment]
        self.offset = 0  # where the unsettled tail starts in the text
        self.length = 0  # characters of text so far
        self.sent_tail = ""  # the tail HTML the client shows
        self.sent_length = 0  # characters of the tail's source when it was last sent
        self.sent_at = -float("inf")  # when the tail was last sent (clock seconds)
        self.last_text = -float("inf")  # when the last delta arrived
        self.dirty = False
        self.refresh = fmt.refresh
        self.tail_id = fmt.tail_id
        self.oob_tail = fmt.oob_tail
        self.blocks_template = fmt.blocks_template
        self.tail_template = fmt.tail_template
        self.sent_blocks: list[str] = []  # the settled blocks' HTML, in the order sent

    def start(self) -> bytes:
        fmt = self.fmt
        if not fmt.create_tail:
            return super().start()
        setup = fmt.setup_template.render({"target": fmt.target, "tail_id": self.tail_id})
        return super().start() + self.data(setup)

    def text(self, text: str) -> bytes:
        self.parts.append(text)
        self.length += len(text)
        self.dirty = True
        self.last_text = self.fmt.clock()
        return self.render(force=False) if self.due() else b""

    def event(self, event: LLMEvent) -> bytes:
        if type(event) is TextDelta:
            return self.text(event.text)
        return b""

    def flush(self) -> bytes:
        # The pump polls this every ``interval`` even while deltas flow; only a model that has
        # been silent for an interval gets its held text shown whatever its size.
        if not self.due():
            return b""
        return self.render(force=self.fmt.clock() - self.last_text >= self.fmt.interval)

    def drain(self) -> bytes:
        return self.render(force=True)

    def worth_resending(self, now: float) -> bool:
        """Whether the grown tail is worth its bytes: none of it is shown yet, or it was last
        sent ``refresh`` seconds ago (length / 1,000 seconds for a tail longer than ``refresh``
        x 1,000 characters: a long paragraph still grows visibly, and its re-sends cost at most
        ~1,000 characters a second, linear in time instead of quadratic)."""
        length = self.length - self.offset
        if length <= self.sent_length:
            return False
        if self.sent_length == 0 or self.refresh == 0:
            return True
        return now - self.sent_at >= max(self.refresh, length / _TAIL_CHARS_PER_SECOND)

    def render(self, *, force: bool) -> bytes:
        """Settled blocks and the tail, if anything changed and (unless ``force``) a block
        settled or the tail is worth re-sending. At most one check per ``interval``."""
        if not self.dirty:
            return b""
        now = self.fmt.clock()
        # A check counts as a render for the interval, so parsing stays at one per interval
        # even when nothing is sent.
        self.last_render = now
        worth = force or self.worth_resending(now)
        if not worth:
            text = "".join(self.parts)
            self.parts = [text]  # joined once per check, not once per token
            if "\n" not in text[self.offset :] and "\r" not in text[self.offset :]:
                # One line is one block: nothing can settle, no need to parse.
                return b""
        self.dirty = False
        text = "".join(self.parts)
        self.parts = [text]
        split = self.md.split(text, self.offset)
        html = ""
        if split.settled:
            self.offset = split.offset
            self.sent_blocks.append(split.settled)
            html = self.blocks_template.render(
                {"tail_id": self.tail_id, "html": Markup(wire_newlines(split.settled))}
            )
        elif not worth:
            self.dirty = True  # still held: goes out when worth it, at a pause or at the end
            return b""
        tail = split.tail
        if tail != self.sent_tail or split.settled:
            # After blocks settle the tail element still shows the old last block: always resend.
            self.sent_tail = tail
            self.sent_length = len(text) - self.offset
            self.sent_at = now
            if self.oob_tail or not tail.strip():
                # Out of band: the page swaps nothing itself, or the tail is empty (an empty
                # main swap is skipped by htmx, which would leave the old block showing).
                html += self.tail_template.render(
                    {"tail_id": self.tail_id, "html": Markup(wire_newlines(tail))}
                )
            else:
                html += wire_newlines(tail)  # the main content: the page swaps it into the tail
        return self.data(html) if html else b""

    def end(self, result: StreamResult) -> bytes:
        # What is still held back goes out with the last event, not in a render of its own.
        self.dirty = False
        fmt = self.fmt
        if result.reason not in ("completed", "error", "shutdown") or (
            fmt.resend_final or fmt.custom_final
        ):
            return super().end(result)
        text = "".join(self.parts)
        rest = self.md.render(text[self.offset :])
        whole = self.md.render(text)
        if "".join(self.sent_blocks) + rest != whole:
            # A block sent earlier renders differently as part of the whole: a link reference
            # definition that arrived after the paragraph using it, or a parser plugin that
            # looks at the whole document. The page must end with the whole render.
            return self.final(result, Markup(wire_newlines(whole)))
        context = {
            "tail_id": self.tail_id,
            "html": Markup(wire_newlines(rest)),
            "error": Markup(escape_text(self.error_message or "")),
        }
        out = self.data(fmt.rest_template.render(context))
        return out + encode_data(result.reason, fmt.done_event)


class MarkdownFormat(_Base):
    """The answer rendered as sanitised Markdown, built up in ``#target`` block by block.

    Fragment events are unnamed (or ``event_name``); the last event is the named ``done``:

    1. (``prelude``, if given), then a fragment that empties ``#target`` and puts the tail
       element ``<div id="<target>-tail" class="sse-llm-tail">`` in it (unless
       ``create_tail=False``: the page already holds it);
    2. at most one render per ``interval`` seconds: completed top-level blocks (paragraphs,
       lists, code blocks, tables ...) once, inserted out of band before the tail element, and
       the HTML of the last, still-growing block as the event's main content, which the page
       swaps into the tail element (see below; with ``oob_tail=True``, and always when the tail
       is empty, which htmx would not swap, it is sent out of band, at ~48 bytes per update);
    3. the last event: the blocks not sent yet are inserted before the tail element and the
       tail element is deleted, so ``#target`` holds exactly ``markdown.render(text)`` of the
       whole answer. This is checked on the server, byte for byte, against a render of the
       whole text; if it did not hold (or with ``resend_final=True``, or a custom
       ``final_template``) the complete message is swapped in as ``#target``'s content
       instead (:data:`FINAL_TEMPLATE`). An error message follows the answer as
       ``<p class="sse-llm-error" role="alert">``. Then the ``done`` event.

    The page routes the main content to the current tail element:

    - htmx 4 (``hx-sse``): ``hx-swap='innerHTML target:"previous .sse-llm-tail"'`` on the form
      that posts, placed after the messages. The ``target:`` modifier is resolved at every
      swap (``hx-target`` is resolved once, when the request starts, before the answer
      exists), and ``previous`` finds the newest tail (a stopped answer keeps its own);
    - htmx 2 (``htmx-ext-sse``): the page holds the tail, ``sse-swap="message"`` on it, and
      the format does not create it: ``<div id="answer"><div id="answer-tail"
      class="sse-llm-tail" sse-swap="message"></div></div>`` with ``create_tail=False``.

    When to re-send the tail (checked at most once per ``interval``): when a block has settled
    (with the blocks, at the first check after it did), when none of the tail is shown yet
    (the first words appear at once), and otherwise when ``refresh`` seconds have passed since
    it was last sent (for a tail of more than ``refresh`` x 1,000 characters: its length /
    1,000 seconds, which keeps a long paragraph's re-sends linear in time). So a growing
    block visibly grows every ``refresh`` seconds, and bytes on the wire stay close to linear
    in the answer (``benchmarks/README.md``: 2.9x the answer's text for a dense 2,000-token
    Markdown answer at the defaults; ``refresh=0`` re-sends the tail at every render: 6.2x).
    Text held back is sent when the model pauses for an interval (the pump's flush hook,
    within about two intervals) and in the last event.

    Newlines in fragments are sent as ``&#10;`` (one ``data:`` line per built-in fragment; a
    ``prelude`` is sent as written) and the HTML is compact (no newlines between block tags,
    see :func:`sse_llm._markdown.compact`).

    Args:
        target: the id of the answer element (required: every fragment is addressed to it).
        interval: seconds between renders (default 0.1). 0 renders at every delta and has no
            flush: text the ``refresh`` rule holds back waits for the next delta or the end.
        refresh: seconds; the longest a growing tail of up to ``refresh`` x 1,000 characters
            waits for a re-send (default 0.5; 0 re-sends it at every render, whatever its
            length: bytes then grow with the square of a long paragraph).
        markdown: the :class:`~sse_llm.html.MarkdownRenderer` (parser + sanitiser).
        oob_tail: send tail updates out of band (``innerHTML:#<target>-tail``), for pages that
            cannot route the main content to the tail; default ``False``.
        create_tail: send the first fragment that puts the tail element into ``#target``;
            ``False`` when the page's own markup holds it (default ``True``).
        resend_final: the last event always swaps in the complete message, even when the page
            already holds all of it but the last block (costs the rendered answer's size once
            more); default ``False``.
        prelude, final_template, done_event, event_name, clock: as for
            :class:`HTMLAppendFormat`.

    Raises:
        ValueError: as for :class:`HTMLAppendFormat`, or ``refresh`` negative.
    """

    def __init__(
        self,
        target: str,
        *,
        prelude: str | None = None,
        interval: float = 0.1,
        refresh: float = 0.5,
        markdown: MarkdownRenderer | None = None,
        oob_tail: bool = False,
        create_tail: bool = True,
        resend_final: bool = False,
        final_template: Template | str | None = None,
        done_event: str = "done",
        event_name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            target,
            prelude=prelude,
            interval=interval,
            final_template=final_template,
            done_event=done_event,
            event_name=event_name,
            markdown=markdown if markdown is not None else MarkdownRenderer(),
            clock=clock,
        )
        if refresh < 0:
            raise ValueError(f"refresh must be >= 0 seconds, got {refresh}")
        self.refresh = refresh
        self.oob_tail = oob_tail
        self.create_tail = create_tail
        self.resend_final = resend_final
        self.tail_id = f"{target}-tail"
        self.setup_template = _template(None, _SETUP_TEMPLATE)
        self.blocks_template = _template(None, _BLOCKS_TEMPLATE)
        self.tail_template = _template(None, _TAIL_TEMPLATE)
        self.rest_template = _template(None, _REST_TEMPLATE)

    def renderer(self) -> Renderer:
        return _MarkdownRenderer(self)
