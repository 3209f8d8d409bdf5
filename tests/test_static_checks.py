"""The public API stays typed (mypy --strict) and lint-clean (ruff): checked on every run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_mypy_strict_is_clean_on_src() -> None:
    result = _run("mypy", "--strict", "src/sse_llm")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean_on_src() -> None:
    result = _run("ruff", "check", "src")
    assert result.returncode == 0, result.stdout + result.stderr
