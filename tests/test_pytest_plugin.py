"""sse-llm's pytest plugin (entry point ``pytest11``): ``async def`` tests run under plain
pytest, through anyio's plugin; tests another plugin claims are left alone."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

TESTS = """
import pytest
import sniffio
from sse_llm.testing import FakeLLM, run_stream
from sse_llm import EventStream

async def test_unmarked():
    response = await run_stream(EventStream(FakeLLM("a b", delay=0).stream()))
    assert response.events[-1].event == "done"

class TestInAClass:
    async def test_method(self):
        assert sniffio.current_async_library() == "asyncio"

@pytest.mark.anyio
async def test_already_marked(anyio_backend):
    assert anyio_backend == "asyncio"

def test_sync():
    pass
"""
CONFTEST = """
import pytest

@pytest.fixture
def anyio_backend():
    return "asyncio"
"""


def run_pytest(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_async_tests_run_under_plain_pytest(tmp_path: Path) -> None:
    (tmp_path / "test_it.py").write_text(TESTS, encoding="utf-8")
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b4 passed\b", result.stdout), result.stdout


def test_without_the_plugin_pytest_cannot_run_them(tmp_path: Path) -> None:
    (tmp_path / "test_it.py").write_text(TESTS, encoding="utf-8")
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    result = run_pytest(tmp_path, "-p", "no:sse_llm")
    assert result.returncode != 0
    assert "async def functions are not natively supported" in result.stdout


def test_with_anyio_s_plugin_off_sync_tests_still_collect_under_strict_markers(
    tmp_path: Path,
) -> None:
    # Found in review: the plugin marked async tests `anyio` even with anyio's plugin turned
    # off, and --strict-markers then failed the whole module, its sync tests too.
    (tmp_path / "test_it.py").write_text(
        "async def test_async():\n    pass\n\ndef test_sync():\n    pass\n", encoding="utf-8"
    )
    result = run_pytest(tmp_path, "-p", "no:anyio", "--strict-markers")
    assert "1 passed" in result.stdout, result.stdout + result.stderr
    assert "'anyio' not found in `markers`" not in result.stdout
