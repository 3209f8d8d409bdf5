"""Server-side Markdown for model output: render, sanitise, and split into settled blocks.

Model output is untrusted input (it can be steered by prompt injection), so it goes through two
independent filters before it reaches a page:

1. markdown-it-py with ``html=False``: raw HTML in the text is escaped, not passed through, and
   its link validator refuses ``javascript:``, ``vbscript:``, ``file:`` and ``data:`` URLs;
2. nh3 (the ammonia sanitiser) with an explicit allow-list of tags and attributes, URL schemes
   limited to ``http``, ``https`` and ``mailto``, and ``rel="noopener nofollow"`` on links.

Images are not in the allow-list: an ``<img src>`` that the model was tricked into writing can
carry the conversation to a third-party server as soon as it renders (the usual prompt-injection
exfiltration route).

While an answer streams, :meth:`MarkdownRenderer.split` separates the top-level blocks that can
no longer change from the last block, which may still grow: the settled blocks are sent once,
only the last one is re-rendered.

The HTML is compact: the newline markdown-it writes after each block-level tag (between
``</li>`` and ``<li>``, after ``</p>`` ...) is dropped. It is only whitespace between blocks, which
a browser does not show (and which would show as blank lines under ``white-space: pre-wrap``),
and on an SSE stream every newline costs a new ``data:`` line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

__all__ = [
    "ALLOWED_ATTRIBUTES",
    "ALLOWED_TAGS",
    "ALLOWED_URL_SCHEMES",
    "MarkdownRenderer",
    "Split",
    "compact",
    "sanitize",
]

#: Tags CommonMark + GFM tables/strikethrough produce, minus ``img``.
ALLOWED_TAGS: frozenset[str] = frozenset(
    {
        "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6",
        "hr", "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead",
        "tr", "ul",
    }
)  # fmt: skip
#: Attributes kept per tag; ``class`` on ``code`` only as ``language-<name>`` (see filter).
ALLOWED_ATTRIBUTES: Mapping[str, frozenset[str]] = {
    "a": frozenset({"href", "title"}),
    "ol": frozenset({"start"}),
    "code": frozenset({"class"}),
}
#: The only URL schemes a link may use; relative URLs are kept (same origin).
ALLOWED_URL_SCHEMES: frozenset[str] = frozenset({"http", "https", "mailto"})

_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}")


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute == "class":
        # A fence's info string becomes a class; keep only a plain language name.
        return value if tag == "code" and _LANGUAGE_CLASS.fullmatch(value) else None
    return value


#: A newline right after a block-level tag and before another tag (or the end): whitespace
#: between blocks. Newlines in text (code blocks, soft line breaks) are never followed by a tag
#: this way, since the model's own ``<`` is escaped (``html=False``).
_BLOCK_NEWLINE = re.compile(
    r"(</?(?:p|li|ul|ol|h[1-6]|blockquote|pre|table|thead|tbody|tr|th|td)>|<ol start=\"\d+\">"
    r"|<hr>)\n(?=<|\Z)"
)


def compact(html: str) -> str:
    """``html`` (nh3's serialisation) without the newlines between block-level tags.

    Dropping them never changes what is shown: the tree differs only by whitespace-only text
    nodes between blocks. Applied per block, so settled pieces plus the tail still add up to
    the whole render.
    """
    return _BLOCK_NEWLINE.sub(r"\1", html)


def sanitize(html: str) -> str:
    """Clean ``html`` with the allow-lists above (nh3/ammonia; comments dropped).

    Anything not allowed is removed: ``<script>``/``<style>`` with their content, other tags
    keep their text. Links get ``rel="noopener nofollow"``; ``href`` with another scheme than
    ``http``, ``https`` or ``mailto`` is dropped.
    """
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_attribute_filter,
        url_schemes=set(ALLOWED_URL_SCHEMES),
        link_rel="noopener nofollow",
        strip_comments=True,
    )


@dataclass(frozen=True, slots=True)
class Split:
    """The result of :meth:`MarkdownRenderer.split`.

    Attributes:
        settled: sanitised HTML of the blocks completed since ``start`` (may be ``""``).
        tail: sanitised HTML of the last block, which may still change.
        offset: the character offset in the text where the tail begins: pass it as ``start``
            next time, so only the tail is parsed again.
    """

    settled: str
    tail: str
    offset: int


def _default_parser() -> MarkdownIt:
    # html=False: the model's raw HTML is shown as text, never interpreted.
    return MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


class MarkdownRenderer:
    """Markdown to sanitised HTML, whole or split into settled blocks and a growing tail.

    Args:
        parser: a configured ``markdown_it.MarkdownIt``; the default is CommonMark with GFM
            tables and strikethrough and ``html=False``. Its output is sanitised whatever it is.
    """

    def __init__(self, parser: MarkdownIt | None = None) -> None:
        self.parser: MarkdownIt = parser if parser is not None else _default_parser()

    def render(self, text: str) -> str:
        """The sanitised, compact HTML of the whole ``text``."""
        return compact(sanitize(self.parser.render(text)))

    def split(self, text: str, start: int = 0) -> Split:
        """Render ``text[start:]`` as settled blocks plus the last, still-growing block.

        ``start`` must be a block boundary returned earlier as :attr:`Split.offset` for a
        prefix of the same text. Parsing from there gives the same blocks as parsing the
        whole text, because a top-level block that another one follows is closed for good,
        unless that other one is decided by the last, unfinished line: it starts there, or it
        is a table whose delimiter row is there. That line may still turn out to continue
        the block before (a lazy continuation, a setext underline, a table's delimiter row,
        or a delimiter row that stops being one), so such a block never settles the one
        before it. A link reference
        definition can change an earlier paragraph: while the text contains one, nothing is
        reported as settled (everything is tail).
        """
        source = text[start:]
        env: dict[str, object] = {}
        tokens = self.parser.parse(source, env)
        blocks = list(_top_level_blocks(tokens))
        if len(blocks) > 1 and _joins_last_line(tokens, blocks[-2], blocks[-1], source):
            # The last line is still being written and can still join the block before it:
            # "*" is an empty list item now, but "**" is a lazy continuation of the previous
            # paragraph; "=" or "|---|" turn the paragraph above into a heading or a table.
            blocks.pop()
        if len(blocks) <= 1 or env.get("references"):
            return Split("", self._render_tokens(tokens, env) if tokens else "", start)
        last_start, _ = blocks[-1]
        settled_tokens = tokens[:last_start]
        source_map = tokens[last_start].map
        first_line = source_map[0] if source_map else 0
        return Split(
            self._render_tokens(settled_tokens, env),
            self._render_tokens(tokens[last_start:], env),
            start + _line_offset(source, first_line),
        )

    def _render_tokens(self, tokens: list[Token], env: dict[str, object]) -> str:
        return compact(sanitize(self.parser.renderer.render(tokens, self.parser.options, env)))


def _top_level_blocks(tokens: list[Token]) -> Iterable[tuple[int, int]]:
    """``(first, end)`` token index ranges of the level-0 blocks that have a source map."""
    first = None
    for index, token in enumerate(tokens):
        if token.level != 0:
            continue
        if token.nesting >= 0 and first is None:
            first = index
        if token.nesting <= 0 and first is not None:
            if tokens[first].map is not None:
                yield first, index + 1
            first = None


def _joins_last_line(
    tokens: list[Token], before: tuple[int, int], last: tuple[int, int], text: str
) -> bool:
    """The last block starts on the text's last line, right after ``before`` (no blank line
    between): what that line becomes may still change ``before``. A table counts from its
    delimiter row, the line after its first: until that row is finished, the table may
    still turn out to be lines of the paragraph before (``|---|-`` is a delimiter row so
    far, ``|---|---| # H`` is not)."""
    before_map, last_map = tokens[before[0]].map, tokens[last[0]].map
    if before_map is None or last_map is None:
        return False
    decided_on = last_map[0] + (tokens[last[0]].type == "table_open")
    return decided_on >= len(_LINE_END.findall(text)) and before_map[1] >= last_map[0]


def _line_offset(text: str, line: int) -> int:
    """The character offset of line ``line`` (0-based; CRLF, CR and LF end lines)."""
    offset = 0
    for _ in range(line):
        match = _LINE_END.search(text, offset)
        if match is None:
            return len(text)
        offset = match.end()
    return offset


_LINE_END = re.compile(r"\r\n|\r|\n")
