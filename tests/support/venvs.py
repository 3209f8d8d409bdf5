"""Fresh virtualenvs with sse-llm installed as a user installs it: the wheel built from this
checkout, its dependencies from the package index (pip's cache makes repeats cheap).

The ``sse_llm_wheel`` fixture (one build per test session) is registered through
``tests/conftest.py``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALL_TIMEOUT = 600  # seconds: dependencies come from the package index

# PEP 723's reference regular expression for an inline script metadata block.
_PEP723 = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
_SELF = re.compile(r"^sse-llm(\[[^\]]*\])?\s*$")


@pytest.fixture(scope="session")
def sse_llm_wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The wheel of this checkout (``pip wheel --no-deps .``)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        timeout=INSTALL_TIMEOUT,
    )
    [built] = out.glob("sse_llm-*.whl")
    yield built


def script_dependencies(path: Path) -> list[str]:
    """The ``dependencies`` of a script's PEP 723 ``script`` block.

    Raises:
        ValueError: the file has no ``# /// script`` block.
    """
    for match in _PEP723.finditer(path.read_text(encoding="utf-8")):
        if match.group("type") == "script":
            lines = match.group("content").splitlines(keepends=True)
            toml = "".join(line[2:] if line.startswith("# ") else line[1:] for line in lines)
            return list(tomllib.loads(toml).get("dependencies", []))
    raise ValueError(f"{path} has no PEP 723 script block")


def requirement_lines(path: Path) -> list[str]:
    """The requirements of a requirements file (comments and blank lines dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text("utf-8").splitlines())
    return [line for line in lines if line]


def from_wheel(requirements: Iterable[str], wheel: Path) -> list[str]:
    """``requirements`` with ``sse-llm[...]`` taken from ``wheel`` (this checkout), not the
    package index."""
    out = []
    for requirement in requirements:
        match = _SELF.match(requirement)
        out.append(f"sse-llm{match.group(1) or ''} @ {wheel.as_uri()}" if match else requirement)
    return out


def make_venv(path: Path, requirements: Iterable[str]) -> Path:
    """A new virtualenv at ``path`` with ``requirements`` installed; returns its ``bin``."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    bin_dir = path / "bin"
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", *requirements],
        check=True,
        timeout=INSTALL_TIMEOUT,
    )
    return bin_dir


def installed(bin_dir: Path) -> set[str]:
    """The distribution names (lower case) installed in a virtualenv."""
    freeze = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return {line.partition("==")[0].lower() for line in freeze.splitlines() if "==" in line}
