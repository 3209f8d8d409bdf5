"""What an htmx page shows after applying a stream of HTML fragments (without a browser)."""

from __future__ import annotations

import re
from typing import Any

_OOB = re.compile(
    r'<div hx-swap-oob="(beforebegin|innerHTML|delete):#([A-Za-z0-9_-]+)">(.*?)</div>'
)


def htmx_view(events: list[Any], target: str) -> str:
    """``#target``'s innerHTML after a page applied ``events`` as the htmx 4 demo does: out-of-band
    swaps, and each event's main content swapped into the tail (``hx-target="previous
    .sse-llm-tail" hx-swap="innerHTML"``; htmx skips an empty main swap). Newlines sent as
    ``&#10;`` are read back as the newlines the browser's parser makes of them. Sanitised
    Markdown has no ``div``, so the first ``</div>`` ends an out-of-band wrapper."""
    tail_id = f"{target}-tail"
    setup = (
        f'<div hx-swap-oob="innerHTML:#{target}">'
        f'<div id="{tail_id}" class="sse-llm-tail"></div></div>'
    )
    blocks: list[str] = []
    tail: str | None = None
    for event in events:
        if event.event != "message":
            continue
        data = event.data
        if data.startswith(setup):
            blocks, tail, data = [], "", data[len(setup) :]
        for style, element, content in _OOB.findall(data):
            if element == target:  # the complete message
                assert style == "innerHTML"
                blocks, tail = [content], None
            elif style == "beforebegin":
                assert element == tail_id and tail is not None
                blocks.append(content)
            elif style == "innerHTML":
                assert element == tail_id and tail is not None
                tail = content
            else:
                assert element == tail_id and tail is not None
                tail = None
        main = _OOB.sub("", data)
        if main.strip():
            assert tail is not None, f"main content with no tail element: {main!r}"
            tail = main
    view = "".join(blocks)
    if tail is not None:
        view += f'<div id="{tail_id}" class="sse-llm-tail">{tail}</div>'
    return view.replace("&#10;", "\n")
