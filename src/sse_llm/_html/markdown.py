"""Markdown mode: the answer rendered as sanitised Markdown, built up block by block."""

from __future__ import annotations

import time
from collections.abc import Callable

from markupsafe import Markup

from .._encoder import encode_data
from .._formats import NOTHING, FormatWriter, Units
from .._markdown import MarkdownRenderer
from .._result import StreamResult
from .fragments import (
    ERROR_TEMPLATE,
    FormatOptions,
    FragmentWriter,
    Template,
    compile_template,
    template_text,
    wire_newlines,
)

__all__ = ["MarkdownFormat"]

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
    '{% if html or error or sources %}<div hx-swap-oob="beforebegin:#{{ tail_id }}">{{ html }}'
    "{{ sources }}" + ERROR_TEMPLATE + '</div>{% endif %}<div hx-swap-oob="delete:#{{ tail_id }}">'
    "</div>"
)

#: Markdown mode: the longest wait between re-sends of a growing tail is ``refresh`` seconds,
#: or its length over this many characters per second if longer (see ``worth_resending``).
_TAIL_CHARS_PER_SECOND = 1000.0
#: Markdown mode: a tail that is not re-sent is still parsed, to see whether a block settled,
#: but at most this many of its characters a second (markdown-it parses ~1 MB/s here: about 2%
#: of a core). A long list or table is one growing block: parsed whole at every interval, it
#: cost CPU with the square of its length (21 s for an 800-row list streamed in 128 s).
_PARSE_CHARS_PER_SECOND = 20_000.0
#: Markdown mode: seconds of silence after which held text is shown whatever the bytes budget
#: (a model that stops to think or to run a tool, not one that is merely slow).
_LONG_PAUSE = 1.0


class _MarkdownWriter(FragmentWriter):
    fmt: MarkdownFormat

    def __init__(self, fmt: MarkdownFormat) -> None:
        super().__init__(fmt)
        self.md = fmt.markdown_renderer
        self.offset = 0  # where the unsettled tail starts in the text
        self.length = 0  # characters of text so far
        self.sent_tail = ""  # the tail HTML the client shows
        self.sent_length = 0  # characters of the tail's source when it was last sent
        self.sent_at = -float("inf")  # when the tail was last sent (clock seconds)
        self.last_text = -float("inf")  # when the last delta arrived
        self.dirty = False
        self.parsed_at = -float("inf")  # when the tail was last parsed (clock seconds)
        self.refresh = fmt.refresh
        self.tail_id = fmt.tail_id
        self.oob_tail = fmt.oob_tail
        self.blocks_template = fmt.blocks_template
        self.tail_template = fmt.tail_template
        self.sent_blocks: list[str] = []  # the settled blocks' HTML, in the order sent

    def start(self) -> Units:
        fmt = self.fmt
        if not fmt.create_tail:
            return super().start()
        setup = fmt.setup_template.render({"target": fmt.target, "tail_id": self.tail_id})
        return (*super().start(), self.data(setup))

    def text(self, text: str) -> Units:
        self.parts.append(text)
        self.length += len(text)
        self.dirty = True
        self.last_text = self.fmt.clock()
        return self.render(force=False) if self.due() else NOTHING

    def flush(self) -> Units:
        # The pump polls this every ``interval`` even while deltas flow. A model silent for an
        # interval gets its held text shown without the ``refresh`` wait, within the tail's
        # bytes budget (a slow model pauses between every two chunks); one silent for a
        # second (thinking, a tool call) gets it shown whatever the budget.
        if not self.due():
            return NOTHING
        silent = self.fmt.clock() - self.last_text
        if silent >= _LONG_PAUSE:
            return self.render(force=True)
        return self.render(force=False, paused=silent >= self.fmt.interval)

    def drain(self) -> Units:
        return self.render(force=True)

    def with_main(self, oob: str) -> str:
        # An htmx 2 page swaps each event's main content into the tail (sse-swap): an event of
        # out-of-band swaps alone would empty it. The tail the page shows goes along.
        if self.oob_tail or not self.sent_tail.strip():
            return oob
        return oob + wire_newlines(self.sent_tail)

    def worth_resending(self, now: float, paused: bool) -> bool:
        """Whether the grown tail is worth its bytes: none of it is shown yet, or it was last
        sent ``refresh`` seconds ago (length / 1,000 seconds for a tail longer than ``refresh``
        x 1,000 characters: a long paragraph still grows visibly, and its re-sends cost at most
        ~1,000 characters a second, linear in time instead of quadratic). While the model
        pauses (``paused``) only the bytes budget applies: held text is shown as soon as the
        last re-send has been paid for."""
        length = self.length - self.offset
        if length <= self.sent_length:
            return False
        if self.sent_length == 0 or self.refresh == 0:
            return True
        budget = length / _TAIL_CHARS_PER_SECOND
        return now - self.sent_at >= (budget if paused else max(self.refresh, budget))

    def render(self, *, force: bool, paused: bool = False) -> Units:
        """Settled blocks and the tail, if anything changed and (``force``) or a block settled
        or the tail is worth re-sending. At most one check per ``interval``."""
        if not self.dirty:
            return NOTHING
        now = self.fmt.clock()
        # A check counts as a render for the interval, so parsing stays at one per interval
        # even when nothing is sent.
        self.last_render = now
        worth = force or self.worth_resending(now, paused)
        text = self.text_so_far()  # joined once per check, not once per token
        if not worth:
            if "\n" not in text[self.offset :] and "\r" not in text[self.offset :]:
                return NOTHING  # one line is one block: nothing can settle, no need to parse
            if (
                self.fmt.interval  # interval=0 asked for a render at every delta
                and now - self.parsed_at < (len(text) - self.offset) / _PARSE_CHARS_PER_SECOND
            ):
                return NOTHING  # a long tail: whether a block settled can wait a little
        self.parsed_at = now
        self.dirty = False
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
            return NOTHING
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
        return (self.data(html),) if html else NOTHING

    def write_end(self, result: StreamResult) -> Units:
        # What is still held back goes out with the last event, not in a render of its own.
        self.dirty = False
        fmt = self.fmt
        if fmt.resend_final or fmt.custom_final:
            return super().write_end(result)
        text = self.text_so_far()
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
            "sources": self.sources_html(),
            "error": template_text(self.error_message or ""),
        }
        last = self.open_activity_removals() + fmt.rest_template.render(context)
        return (self.data(last), encode_data(result.reason, fmt.done_event))


class MarkdownFormat(FormatOptions):
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
       instead (:data:`FINAL_TEMPLATE`). The sources list follows the answer, then an error
       message as ``<p class="sse-llm-error" role="alert">``. Then the ``done`` event.

    Provider tools and sources as for :class:`HTMLAppendFormat`: the activity line is added at
    the end of ``#target``, after the tail element (so blocks settling meanwhile go in above
    it), and deleted when the tool ends; an activity event also carries the tail HTML the page
    already shows as its main content (an htmx 2 tail with ``sse-swap`` would otherwise be
    emptied by an event of out-of-band swaps only). The sources list is inserted with the last
    blocks, before the tail element is removed.

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
    within about two intervals; for a tail longer than ``interval`` x 1,000 characters, once
    its length / 1,000 seconds have passed since its last re-send, so that a slow model, which
    pauses between every two chunks, is not sent the whole tail per chunk), after a second of
    silence whatever its length, and in the last event. Between re-sends the tail is parsed
    (to see whether a block settled) at most every its length / 20,000 seconds (unless
    ``interval=0``), so a long list or table, one growing block, costs CPU linear in time
    (about 2% of a core), not with the square of its length.

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
        prelude: trusted HTML sent as the first event, as for :class:`HTMLAppendFormat`.
        final_template: the complete message's template, see :data:`FINAL_TEMPLATE`. If it
            (or ``sources_template``, or the renderer) raises, the stream ends as an error with
            the default template: the whole answer as escaped text, the error line, ``done``.
        done_event: name of the closing event (default ``"done"``).
        event_name: the SSE event name of the fragment events (``None``: unnamed), as for
            :class:`HTMLAppendFormat`.
        sources_template: the sources list's template (``""``: none), as for
            :class:`HTMLAppendFormat`.
        activity_template: the provider-tool line's template (``""``: none), as for
            :class:`HTMLAppendFormat`.
        clock: seconds, monotonic (tests and benchmarks inject one).

    Raises:
        TypeError: ``target`` is not a ``str``.
        ValueError: as for :class:`HTMLAppendFormat`, or ``refresh`` negative or not finite.
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
        sources_template: Template | str | None = None,
        activity_template: Template | str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(target, str):  # the append format's None (htmx 4) does not apply
            raise TypeError(f"MarkdownFormat needs a target element id, not {target!r}")
        super().__init__(
            target,
            prelude=prelude,
            interval=interval,
            final_template=final_template,
            done_event=done_event,
            event_name=event_name,
            markdown=markdown if markdown is not None else MarkdownRenderer(),
            clock=clock,
            sources_template=sources_template,
            activity_template=activity_template,
        )
        #: The renderer itself (``markdown`` is optional for the append format only).
        self.markdown_renderer: MarkdownRenderer = self.markdown or MarkdownRenderer()
        if not 0 <= refresh < float("inf"):  # NaN too
            raise ValueError(f"refresh must be a finite number >= 0 of seconds, got {refresh}")
        self.refresh = refresh
        self.oob_tail = oob_tail
        self.create_tail = create_tail
        self.resend_final = resend_final
        self.tail_id: str = f"{target}-tail"
        self.setup_template: Template = compile_template(None, _SETUP_TEMPLATE)
        self.blocks_template: Template = compile_template(None, _BLOCKS_TEMPLATE)
        self.tail_template: Template = compile_template(None, _TAIL_TEMPLATE)
        self.rest_template: Template = compile_template(None, _REST_TEMPLATE)

    def writer(self) -> FormatWriter:
        return _MarkdownWriter(self)
