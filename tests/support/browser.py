"""Headless Chromium for the browser tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

The ``browser`` fixture built on :func:`launch_chromium` is registered in ``plugin.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser

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
