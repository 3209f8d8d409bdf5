"""A pytest plugin (entry point ``pytest11``, loaded automatically): ``async def`` tests run.

Testing a stream means awaiting :func:`sse_llm.testing.run_stream`, so a test is a coroutine
function, which pytest cannot run by itself ("async def functions are not natively
supported"). With sse-llm installed, such a test runs under plain pytest::

    from sse_llm.testing import run_stream

    async def test_chat_streams() -> None:
        response = await run_stream(app, "/chat?q=hi", timeout=5)
        assert response.events[-1].event == "done"

What it does: an ``async def`` test that no async plugin claims gets anyio's marker
(``@pytest.mark.anyio``), so anyio's own pytest plugin (installed with anyio, which sse-llm
depends on) runs it: on asyncio, and with recent anyio on every backend installed (trio too),
unless the test or a ``conftest.py`` defines the ``anyio_backend`` fixture.

A test is left alone when it already has an ``anyio``, ``asyncio`` or ``trio`` marker, and no
test is touched when pytest-asyncio runs in auto mode (``asyncio_mode = auto``), pytest-trio in
trio mode (``trio_mode = true``) or anyio in auto mode: those plugins then run every async test
themselves. Turn the plugin off with ``-p no:sse_llm``.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator
from typing import Any

import pytest

__all__ = ["pytest_pycollect_makeitem"]

_ASYNC_MARKERS = ("anyio", "asyncio", "trio")


def _ini(config: pytest.Config, name: str) -> str:
    try:
        return str(config.getini(name)).strip().lower()
    except ValueError:  # the plugin that declares this option is not installed
        return ""


def _another_plugin_runs_every_async_test(config: pytest.Config) -> bool:
    if _ini(config, "anyio_mode") == "auto" or config.getoption("anyio_mode", None) == "auto":
        return True
    if config.pluginmanager.has_plugin("asyncio") and (
        _ini(config, "asyncio_mode") == "auto" or config.getoption("asyncio_mode", None) == "auto"
    ):
        return True
    return config.pluginmanager.has_plugin("trio") and _ini(config, "trio_mode") in ("true", "1")


def _unclaimed_async_test(collector: pytest.Module | pytest.Class, name: str, obj: Any) -> bool:
    if not collector.istestfunction(obj, name):
        return False
    inner = obj.hypothesis.inner_test if hasattr(obj, "hypothesis") else obj
    if not inspect.iscoroutinefunction(inner):
        return False
    if any(collector.get_closest_marker(marker) for marker in _ASYNC_MARKERS):
        return False
    own = getattr(obj, "pytestmark", ())
    if any(getattr(mark, "name", None) in _ASYNC_MARKERS for mark in own):
        return False
    return not _another_plugin_runs_every_async_test(collector.config)


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> Generator[None, Any, Any]:
    """Mark an unclaimed ``async def`` test for anyio before any plugin collects it (a hook
    wrapper runs before every plain implementation, anyio's included)."""
    # Not with anyio's plugin turned off (-p no:anyio): its marker would be unknown, and
    # under --strict-markers the whole module would fail to collect.
    if collector.config.pluginmanager.has_plugin("anyio") and _unclaimed_async_test(
        collector, name, obj
    ):
        pytest.mark.anyio(obj)
    return (yield)
