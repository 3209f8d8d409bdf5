"""What the model cites and what the provider does, as safe HTML: the sources list and the
activity line of both HTML-fragment formats.

Everything here comes from the provider and is untrusted: a citation's URL may have any scheme
(``javascript:``), its title may hold markup or run to kilobytes, a search query is whatever
the model wrote. So a URL becomes a link only if it is an absolute ``http``/``https`` URL
(WHATWG URL §4.1 "special" web schemes; every other scheme, a relative URL, or more than
:data:`MAX_URL` characters, and it is shown as text);
every text is whitespace-collapsed, cut to a bounded length and HTML-escaped before a template
sees it. Template context values are :class:`markupsafe.Markup`, so a template renders them
safely with or without autoescaping (Jinja2 and Django alike).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape

from .._model import Citation, ToolActivity, source_identity

__all__ = [
    "ACTIVITY_LABELS",
    "ACTIVITY_TEMPLATE",
    "MAX_TITLE",
    "MAX_URL",
    "SOURCES_TEMPLATE",
    "SourceLink",
    "Sources",
    "activity_context",
    "safe_href",
    "shorten",
]

#: The sources list under the answer (context ``sources``: a list of :class:`SourceLink`,
#: never empty; ``target``: the answer element's id). Links open in a new tab with
#: ``rel="noopener nofollow"``: the page they open cannot reach back (``window.opener``) and
#: search engines do not credit the model's choice of source.
SOURCES_TEMPLATE = (
    '<nav class="sse-llm-sources" aria-label="Sources"><ol>'
    '{% for s in sources %}<li value="{{ s.number }}">'
    '{% if s.href %}<a href="{{ s.href }}" rel="noopener nofollow" target="_blank"'
    ' title="{{ s.title }}">{{ s.text }}</a>'
    "{% else %}{{ s.text }}{% endif %}</li>{% endfor %}</ol></nav>"
)
#: The content of the line shown while a provider tool runs (context: ``label``, e.g.
#: "Searching the web"; ``summary``, e.g. the query, or ``""``; ``name``; ``status``). The
#: format puts it in ``<div id="<target>-activity-<n>" class="sse-llm-activity"
#: role="status">`` at the end of ``#target`` and deletes that element when the tool ends.
ACTIVITY_TEMPLATE = "{{ label }}{% if summary %}: {{ summary }}{% endif %}…"

#: What the activity line says while a tool of that name runs; another tool: "Running <name>".
ACTIVITY_LABELS: Mapping[str, str] = {
    "web_search": "Searching the web",
    "web_fetch": "Reading a web page",
    "code_execution": "Running code",
    "file_search": "Searching files",
    "image_generation": "Generating an image",
}

#: Longest source title shown, in characters (before the ellipsis).
MAX_TITLE = 120
#: Longest summary (search query, fetched URL) shown on the activity line, in characters.
MAX_SUMMARY = 100
#: Longest URL made into a link, in characters (the classic practical limit of browsers and
#: servers); a longer one is shown as shortened text.
MAX_URL = 2048
#: Longest URL shown as the text of a link that has no title.
_MAX_URL_TEXT = 80

_WHITESPACE = re.compile(r"\s+")
# C0 controls, space, DEL and the C1 controls: percent-encoded in a link (as the URL parser
# would encode most of them; it drops tabs and newlines, which is how "java\tscript:" slips
# past a naive check).
_URL_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f]")
# The scheme is read from the very first characters, so this prefix decides it: no leading
# space or control character (which the URL parser would strip), a host right after "//".
_WEB_URL = re.compile(r"https?://[^/?#\\\x00-\x20\x7f-\x9f]", re.IGNORECASE)


def safe_href(url: str | None) -> str | None:
    """``url`` if it may be linked, else ``None``: it must start with ``http://`` or
    ``https://`` and a host (so the scheme the browser reads is a web scheme, whatever follows)
    and be at most :data:`MAX_URL` characters. Whitespace and control characters inside are
    percent-encoded (Gemini's grounding URLs carry raw spaces). The caller still escapes the
    result for the attribute."""
    if not url or len(url) > MAX_URL or not _WEB_URL.match(url):
        return None
    return _URL_UNSAFE.sub(lambda m: quote(m.group(), safe=""), url)


def _clean(text: str) -> str:
    """One line of text: every run of whitespace (line breaks included) a single space, format
    and control characters dropped (bidi overrides would reorder the page's own text)."""
    text = "".join(
        ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf") or ch == "\u200d"
    )
    return _WHITESPACE.sub(" ", text).strip()


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters plus an ellipsis: cut at the last
    space in the final fifth when there is one (whole words), never leaving a combining mark,
    joiner or variation selector dangling at the cut."""
    text = _clean(text)
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    if space >= limit * 4 // 5:
        cut = cut[:space]
    while cut and (unicodedata.combining(cut[-1]) or cut[-1] in "\u200d\ufe0e\ufe0f"):
        cut = cut[:-1]
    return cut.rstrip() + "…"


@dataclass(frozen=True, slots=True)
class SourceLink:
    """One entry of the sources list, every text already escaped (:class:`Markup`).

    Attributes:
        number: the source's number: the provider's (Perplexity's ``[n]``, Gemini's grounding
            chunk) when it numbers its sources, else its position in the list (from 1).
        href: the URL to link, escaped for a quoted attribute; ``""`` when it must not be a
            link (another scheme, too long, a document without a web address).
        text: what the entry shows: the title, else the shortened URL or document id.
        title: the title (or URL) up to 300 characters, for a tooltip.
        kind: ``url``, ``document`` or ``file``.
        cited_text: the quoted words, shortened, or ``""``.
    """

    number: int
    href: Markup
    text: Markup
    title: Markup
    kind: str
    cited_text: Markup


class Sources:
    """The distinct sources of one answer, in the order first cited.

    A source cited several times (a page supporting two sentences) is listed once: the key is
    (kind, URL, document id, container id, number).
    """

    __slots__ = ("_keys", "links")

    def __init__(self) -> None:
        self.links: list[SourceLink] = []
        self._keys: set[tuple[str | int | None, ...]] = set()

    def add(self, citation: Citation) -> bool:
        """Record ``citation``; ``True`` if it is a new source."""
        key = source_identity(citation)
        if key in self._keys:
            return False
        self._keys.add(key)
        href = safe_href(citation.url)
        name = citation.title and _clean(citation.title)
        if name:
            text = shorten(name, MAX_TITLE)
        elif citation.url:
            shown = re.sub(r"^https?://", "", citation.url, flags=re.IGNORECASE)
            text = shorten(shown, _MAX_URL_TEXT)
        else:
            text = shorten(citation.document_id or citation.kind, MAX_TITLE)
        number = citation.index if citation.index is not None else len(self.links) + 1
        self.links.append(
            SourceLink(
                number=number,
                href=escape(href or ""),
                text=escape(text),
                title=escape(shorten(name or citation.url or "", 300)),
                kind=citation.kind,
                cited_text=escape(shorten(citation.cited_text or "", 300)),
            )
        )
        return True


def activity_context(activity: ToolActivity) -> dict[str, Any]:
    """The activity template's context for ``activity``: every text escaped and shortened."""
    label = ACTIVITY_LABELS.get(activity.name) or f"Running {shorten(activity.name, 40)}"
    # The line ends with "…" (the tool is running): a shortened summary's own one would double it.
    summary = shorten(activity.summary or "", MAX_SUMMARY).removesuffix("…")
    return {
        "label": escape(label),
        "summary": escape(summary),
        "name": escape(activity.name),
        "status": activity.status,
    }
