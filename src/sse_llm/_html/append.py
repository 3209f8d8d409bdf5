"""Append mode: each text delta as escaped HTML text, for ``hx-swap="beforeend"``."""

from __future__ import annotations

import time
from collections.abc import Callable

from .._formats import NOTHING, FormatWriter, Units
from .._markdown import MarkdownRenderer
from .fragments import (
    FormatOptions,
    FragmentWriter,
    Template,
    compile_template,
    escape_text,
    template_text,
    wire_newlines,
)

__all__ = ["HTMLAppendFormat"]


class _AppendWriter(FragmentWriter):
    def __init__(self, fmt: HTMLAppendFormat) -> None:
        super().__init__(fmt)
        self.pending = ""  # text not sent yet: whitespace-only tokens, or coalesced ones
        self.token_template = fmt.token_template
        self.sent_cr = False  # the last text sent ended with a CR (a flush sent it alone)

    def text(self, text: str) -> Units:
        self.parts.append(text)
        pending = self.pending + text
        # htmx 4 skips a main swap whose fragment is only whitespace (swapEmpty:false), so a
        # space or newline token would be lost: it travels with the next visible token.
        # A trailing CR waits too: it may be the first half of a CRLF that the tokenizer
        # split, and an LF arriving alone would show as a second line break.
        ready = pending[:-1] if pending.endswith("\r") else pending
        if not ready or ready.isspace() or not self.due():
            self.pending = pending
            return NOTHING
        self.pending = pending[len(ready) :]
        return (self._send(ready),)

    def _send(self, text: str, *, whitespace: bool = False) -> bytes:
        self.last_render = self.fmt.clock()
        if self.sent_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF whose CR already went out as the line break
        self.sent_cr = text.endswith("\r")
        if self.token_template is None:
            if whitespace:  # every character as a reference: htmx 4 skips no such fragment
                text = text.replace("\r\n", "\n").replace("\r", "\n")
                return self.data("".join(f"&#{ord(char)};" for char in text))
            return self.data(wire_newlines(escape_text(text)))
        return self.data(self.token_template.render({"text": template_text(text)}))

    def drain(self) -> Units:
        pending = self.pending
        if not pending or pending.isspace():
            return NOTHING  # kept: it goes out with the next visible text
        self.pending = ""
        return (self._send(pending),)

    def drain_end(self) -> Units:
        out = self.drain()
        rest, self.pending = self.pending, ""
        if not rest or self.fmt.target is not None or (self.sent_cr and rest == "\n"):
            return out  # a final fragment carries the whole message, its end included
        # Whitespace (or a CR) that waited for visible text, and none comes: the text the
        # page shows must end as the answer (and the completion hook's text) ends.
        return (*out, self._send(rest, whitespace=True))


class HTMLAppendFormat(FormatOptions):
    """Each text delta as escaped HTML text, for ``hx-swap="beforeend"``.

    Args:
        target: the id of the answer element. When set, the stream ends by swapping the complete
            message into it (escaped text, or the sanitised Markdown render if ``markdown``);
            ``None`` sends no final fragment, only an error's message (``<p
            class="sse-llm-error" role="alert">``, escaped) appended like text.
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
        token_template: template for one delta (context ``text``: escaped, quotes too, so it
            may go in an attribute value); default: the escaped text itself, the fewest bytes.
        final_template: template for the final fragment, see :data:`FINAL_TEMPLATE`. If it
            (or ``sources_template``, or the renderer) raises, the stream ends as an error with
            the default template: the whole answer as escaped text, the error line, ``done``.
        done_event: name of the closing event (``sse-close="done"`` / ``hx-sse:close``).
        event_name: the SSE event name of the fragment events; ``None`` (default) sends them
            unnamed, which htmx 4's ``hx-sse`` swaps (it turns *named* events into DOM events
            instead) and which htmx 2's ``htmx-ext-sse`` receives as ``sse-swap="message"``.
            Set a name only for htmx 2 pages that route several streams by name
            (``sse-swap="<event_name>"``).
        sources_template: template of the sources list shown under the answer, see
            :data:`~sse_llm.html.SOURCES_TEMPLATE` (context ``sources``, a list of
            :class:`~sse_llm.html.SourceLink` whose texts are escaped and whose
            ``href`` is empty unless it is an ``http(s)`` URL); ``""`` shows no sources.
        activity_template: template of the line shown while a provider tool runs, see
            :data:`~sse_llm.html.ACTIVITY_TEMPLATE` (context ``label``, ``summary``,
            ``name``, ``status``); ``""`` shows no activity.
        clock: seconds, monotonic (tests and benchmarks inject one).

    Whitespace-only deltas are held and sent with the next visible one: htmx 4 drops a main
    swap whose content is only whitespace. Style the element with ``white-space: pre-wrap`` so
    newlines show while streaming.

    Sources and provider tools (both need ``target``; without it they are dropped):

    - while a provider tool runs (web search, code execution: a
      :class:`~sse_llm.ToolActivity` ``started``), an event of out-of-band swaps only adds
      ``<div id="<target>-activity-<n>" class="sse-llm-activity" role="status">Searching the
      web: <query>…</div>`` at the end of ``#target`` (``beforeend``); when the tool ends
      (``finished`` / ``failed``) another deletes it (``delete:#<target>-activity-<n>``). A
      line still shown at the end is deleted by the last event. Put the streamed text in a
      child of ``#target`` (as the htmx 2 page of docs/htmx.md does) and the line stays under it;
      streamed into ``#target`` itself, text arriving meanwhile lands after the line;
    - the distinct sources the answer cites (each :class:`~sse_llm.Citation`; the same page
      cited twice is listed once) are listed in the final fragment, after the message and
      before the error: ``<nav class="sse-llm-sources" aria-label="Sources"><ol><li
      value="1"><a href="https://…" rel="noopener nofollow" target="_blank"
      title="…">Title</a></li>…</ol></nav>``. Only an absolute ``http``/``https`` URL of at
      most 2,048 characters, with no whitespace or control character, becomes a link (a
      ``javascript:`` URL is shown as text); titles are put on one line, cut at 120 characters
      (whole words, with an ellipsis) and escaped. A custom ``final_template`` gets the list
      as ``sources``.

    Raises:
        ValueError: ``target`` is not a plain HTML id, ``done_event`` or ``event_name`` not a
            plain event name (or both the same), or ``interval`` negative or not finite.
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
        sources_template: Template | str | None = None,
        activity_template: Template | str | None = None,
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
            sources_template=sources_template,
            activity_template=activity_template,
        )
        self.token_template: Template | None = (
            None if token_template is None else compile_template(token_template, "")
        )

    def writer(self) -> FormatWriter:
        return _AppendWriter(self)
