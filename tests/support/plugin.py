"""pytest fixtures shared across the suite (loaded via ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import pytest

from .browser import launch_chromium
from .replay import ReplayApp
from .servers import run_uvicorn

if TYPE_CHECKING:
    from playwright.sync_api import Browser


class ReplayServer(NamedTuple):
    app: ReplayApp
    base_url: str


@pytest.fixture(scope="session")
def replay_server() -> Iterator[ReplayServer]:
    """One uvicorn replay server per session: ``app, base_url = replay_server``."""
    app = ReplayApp()
    with run_uvicorn(app) as base_url:
        yield ReplayServer(app, base_url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module (see ``browser.py``)."""
    with launch_chromium() as chromium:
        yield chromium
