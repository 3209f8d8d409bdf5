"""The public API stays typed (mypy --strict) and lint-clean (ruff): checked on every run."""

from __future__ import annotations

import ast
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


def test_user_code_type_checks_and_misuses_are_flagged() -> None:
    # Good code passes and every misuse marked there is an error mypy reports (an ignore it
    # did not need fails --strict): decorators keep the view's signature and refuse sync
    # views, each binding's options are only those it takes.
    result = _run("mypy", "--strict", "tests/support/typed_user_code.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_is_clean_on_src() -> None:
    result = _run("ruff", "check", "src")
    assert result.returncode == 0, result.stdout + result.stderr


def _made_up_receive_messages(path: Path) -> list[int]:
    """Lines where ``path`` builds an ASGI message that only a ``receive`` returns
    (``{"type": "http.request" | "http.disconnect", ...}``): the mark of a simulated channel."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if (
                isinstance(key, ast.Constant)
                and key.value == "type"
                and isinstance(value, ast.Constant)
                and value.value in ("http.request", "http.disconnect")
            ):
                lines.append(node.lineno)
    return lines


def test_only_the_test_driver_simulates_an_asgi_channel() -> None:
    # Issue 8: Django, Flask, the WebSocket and the resume hub bind to the pump directly (an
    # async iterator, a memory object stream, a store); none fakes receive()/send() any more.
    src = ROOT / "src" / "sse_llm"
    found = {
        str(path.relative_to(src)): lines
        for path in sorted(src.rglob("*.py"))
        if (lines := _made_up_receive_messages(path))
    }
    assert list(found) == ["testing.py"], found  # run_stream drives an ASGI app: it must
