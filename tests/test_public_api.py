"""The public surface: what ``sse_llm`` exports, and that its type information ships."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.resources
import re
import tomllib
from pathlib import Path

import pytest

import sse_llm

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = [
    "sse_llm",
    "sse_llm.starlette",
    "sse_llm.fastapi",
    "sse_llm.testing",
    "sse_llm.client",
    "sse_llm.formats",
    "sse_llm.websocket",
    "sse_llm.flask",
    "sse_llm.html",
    "sse_llm.django",
    "sse_llm.sources",
    "sse_llm.resume",
]


def test_all_is_sorted_and_unique() -> None:
    assert sse_llm.__all__ == sorted(sse_llm.__all__)
    assert len(set(sse_llm.__all__)) == len(sse_llm.__all__)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_exported_name_resolves(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == []


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from sse_llm import *", namespace)
    namespace.pop("__builtins__")
    assert sorted(namespace) == sse_llm.__all__


def test_core_names_are_exported() -> None:
    expected = {
        "ServerSentEvent",
        "Comment",
        "encode",
        "SSEDecoder",
        "InvalidEventError",
        "EventStream",
        "NamedEventsFormat",
        "TextFormat",
        "StreamResult",
        "TextDelta",
        "ToolCall",
        "Usage",
        "Finish",
    }
    assert expected <= set(sse_llm.__all__)


def test_invalid_event_error_is_a_value_error() -> None:
    assert issubclass(sse_llm.InvalidEventError, ValueError)
    assert issubclass(sse_llm.InvalidEventError, sse_llm.SSELLMError)


def test_version_matches_the_distribution() -> None:
    assert sse_llm.__version__ == importlib.metadata.version("sse-llm")


def test_py_typed_ships_in_the_package() -> None:
    marker = importlib.resources.files("sse_llm").joinpath("py.typed")
    assert marker.is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["sse_llm"]


def test_build_backend_requirement_can_build_the_declared_license() -> None:
    # `license = "MIT"` (a PEP 639 SPDX expression) is understood by setuptools 77 and later;
    # an older setuptools that the requirement allows rejects pyproject.toml and cannot build.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    if not isinstance(config["project"].get("license"), str):
        return  # the table form {text = ...} builds with any setuptools >= 61
    requirement = next(r for r in config["build-system"]["requires"] if r.startswith("setuptools"))
    match = re.search(r">=\s*(\d+)", requirement)
    assert match is not None, requirement
    assert int(match.group(1)) >= 77, requirement
