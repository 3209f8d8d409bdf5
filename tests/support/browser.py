"""Headless Chromium for the browser tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

The ``browser`` fixture built on :func:`launch_chromium` is registered in ``plugin.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from sse_llm import Citation

# executable_path: Debian's chromium, so Playwright downloads no browser of its own.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAUNCH_TIMEOUT_MS = 60_000  # Playwright counts milliseconds; a cold start takes a few seconds


@contextmanager
def launch_chromium() -> Iterator[Browser]:
    """Start Playwright and launch headless Chromium for the ``with`` block; close both after.

    Raises:
        playwright.sync_api.Error: Chromium did not start within ``LAUNCH_TIMEOUT_MS``.
    """
    # Imported here so that loading the shared plugin (every test run) does not need Playwright.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            browser.close()


def source_links(citations: Iterable[Citation]) -> list[dict[str, Any]]:
    """What a demo page shows for each source, as the tests read it back from the DOM: the
    title, linked to the URL in a new tab that gets no ``window.opener`` and no ranking."""
    return [
        {
            "text": c.title,
            "value": c.index,
            "href": c.url,
            "rel": "noopener nofollow",
            "target": "_blank",
        }
        for c in citations
    ]
