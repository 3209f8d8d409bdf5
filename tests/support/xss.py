"""Hostile sources and provider-tool activity: what a compromised search result, a malicious
document or an injected tool call could put into a citation, for every renderer to show inert.

Each payload that ran would set ``window.__xss`` (the browser tests check it stays unset, and
that no unsafe node or attribute ever enters the page).
"""

from __future__ import annotations

from sse_llm import Citation, ToolActivity

#: Model output meant to run code; every payload would set ``window.__xss``. Tokens cut tags,
#: attributes and URLs apart, including ``<scr`` + ``ipt>``.
XSS_TOKENS = [
    "# 보안 ", "점검\n\n",
    "<scr", "ipt>window.__xss=1</scr", "ipt>\n\n",
    "<img src=x on", "error=\"window.__xss=2\">\n\n",
    "[링크](java", "script:window.__xss=3) and [x](javascript:alert(1))\n\n",
    '<a href="javas', 'cript:window.__xss=4">raw</a>\n\n',
    "<svg onload=window.__xss=5>", "</svg>\n\n",
    '<iframe src="javascript:window.__xss=6"></iframe>\n\n',
    "![img](x\" onerror=\"window.__xss=7)\n\n",
    "<details open ontoggle=window.__xss=8>x</details>\n\n",
    "`<b onmouseover=window.__xss=9>code</b>` 끝 <",
]  # fmt: skip

XSS_ANSWER = "".join(XSS_TOKENS)

#: Installed before any page script: records every unsafe node or attribute that ever enters
#: ``container`` (the answers), not just what is left at the end, in ``window.__unsafe``.
WATCH_UNSAFE = """
window.__unsafe = [];
const audit = (node) => {
  if (node.nodeType !== 1) return;
  for (const el of [node, ...node.querySelectorAll("*")]) {
    if (!el.closest("#log, .answer")) continue;
    const tag = el.tagName.toLowerCase();
    if (["script", "img", "iframe", "svg", "object", "embed", "details", "style", "form",
         "input", "button", "base", "meta", "link"].includes(tag)) {
      window.__unsafe.push(tag);
    }
    for (const attr of el.getAttributeNames()) {
      if (attr.startsWith("on") || attr === "style" || attr === "srcdoc") {
        window.__unsafe.push(tag + "[" + attr + "]");
      }
    }
    const href = (el.getAttribute("href") || "").trim();
    if (href && !/^(https?:|mailto:)/i.test(href)) window.__unsafe.push(tag + "[href]" + href);
  }
};
new MutationObserver((records) => {
  for (const record of records) {
    if (record.type === "attributes") audit(record.target);
    record.addedNodes.forEach(audit);
  }
}).observe(document, {subtree: true, childList: true, attributes: true});
"""

#: A 10 KB title: markup and words, so cutting it must not leave a tag or a word half open.
LONG_TITLE = "<b>Very</b> long title, " * 427  # 10,248 characters

#: Citations trying every way into the page we know of.
HOSTILE_SOURCES: tuple[Citation, ...] = (
    Citation("url", url="javascript:window.__xss=11", title="Click for the source"),
    Citation(
        "url",
        url="https://title.example/",
        title='<img src=x onerror="window.__xss=12"><script>window.__xss=13</script> HTML title',
    ),
    Citation("url", url="https://long.example/", title=LONG_TITLE),
    Citation("url", url="java\tscript:window.__xss=14", title="tab in the scheme"),
    Citation("url", url=" javascript:window.__xss=15", title="leading space"),
    Citation("url", url="JAVASCRIPT:window.__xss=16"),
    Citation("url", url="data:text/html,<script>window.__xss=17</script>", title="data URL"),
    Citation(
        "url",
        url='https://quote.example/"><script>window.__xss=18</script>',
        title='" onmouseover="window.__xss=19',
    ),
    Citation("document", title="<i>doc</i>", document_id="<svg onload=window.__xss=20>"),
    Citation("url", url="https://x.example/" + "a" * 3000, title="a 3 KB URL"),
)
#: The ones whose URL may be a link (an http(s) URL of at most 2,048 characters).
LINKED = {"https://title.example/", "https://long.example/", "https://quote.example/"}

#: A provider tool whose query is markup (a search for the page's own XSS payload).
HOSTILE_ACTIVITY = (
    ToolActivity(
        "srvtoolu_x",
        "web_search",
        "started",
        '<img src=x onerror="window.__xss=21">',
        {"query": "<img src=x onerror=window.__xss=21>"},
    ),
    ToolActivity("srvtoolu_y", "<script>window.__xss=22</script>", "started", "x"),
    ToolActivity("srvtoolu_x", "web_search", "finished", "3 results"),
    ToolActivity("srvtoolu_y", "<script>window.__xss=22</script>", "failed", "<b>oops</b>"),
)
