"""pytest fixtures shared across the suite (loaded via ``pytest_plugins``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import pytest

from .replay import ReplayApp
from .servers import run_uvicorn


class ReplayServer(NamedTuple):
    app: ReplayApp
    base_url: str


@pytest.fixture(scope="session")
def replay_server() -> Iterator[ReplayServer]:
    """One uvicorn replay server per session: ``app, base_url = replay_server``."""
    app = ReplayApp()
    with run_uvicorn(app) as base_url:
        yield ReplayServer(app, base_url)
