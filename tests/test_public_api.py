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
    "sse_llm.pytest_plugin",
]
BINDINGS = [
    "sse_llm.starlette",
    "sse_llm.fastapi",
    "sse_llm.django",
    "sse_llm.flask",
    "sse_llm.websocket",
    "sse_llm.resume",
    "sse_llm.html",
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


def test_help_names_every_framework_binding() -> None:
    import pydoc

    text = pydoc.render_doc(sse_llm, renderer=pydoc.plaintext)
    missing = [name for name in BINDINGS if name not in text]
    assert missing == []


def test_the_fallback_is_exported() -> None:
    assert {"collect", "result_json"} <= set(sse_llm.__all__)


def test_the_package_ships_a_license_and_says_where_it_lives() -> None:
    assert "MIT License" in (ROOT / "LICENSE").read_text("utf-8")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    project = config["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert {"Homepage", "Documentation", "Source", "Changelog", "Issues"} <= set(project["urls"])
    assert all(url.startswith("https://") for url in project["urls"].values())
    metadata = importlib.metadata.metadata("sse-llm")
    assert metadata.get_all("Project-URL")  # in the installed distribution too


def test_development_dependencies_are_groups_not_published_extras() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    published = set(config["project"]["optional-dependencies"])
    assert published == {
        "starlette",
        "fastapi",
        "django",
        "flask",
        "websocket",
        "html",
        "openai",
        "client",
        "redis",
    }
    assert {"dev", "demo", "demos", "docs"} <= set(config["dependency-groups"])


def test_the_pytest_plugin_is_registered_as_an_entry_point() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert config["project"]["entry-points"]["pytest11"] == {"sse_llm": "sse_llm.pytest_plugin"}
    found = importlib.metadata.entry_points(group="pytest11", name="sse_llm")
    assert [e.value for e in found] == ["sse_llm.pytest_plugin"]


def test_the_changelog_lists_the_renames() -> None:
    text = (ROOT / "CHANGELOG.md").read_text("utf-8")
    for old, new in [
        ("EventsFormat", "NamedEventsFormat"),
        ("JSONEventsFormat", "TypedJSONFormat"),
        ("Renderer", "FormatWriter"),
        ("StreamError", "ErrorEvent"),
        ("SSEStreamingResponse", "SSEResponse"),
        (".heartbeat", ".keepalive"),
        ("renderer()", "writer()"),
    ]:
        assert old in text and new in text, old


def test_no_docstring_recommends_the_websocket_route_call_fastapi_lacks() -> None:
    # FastAPI >= 0.116 has no add_websocket_route: docs show WebSocketRoute or @app.websocket.
    sources = [*(ROOT / "src" / "sse_llm").rglob("*.py"), ROOT / "README.md"]
    sources += list((ROOT / "docs").rglob("*.md"))
    offenders = [str(p) for p in sources if "add_websocket_route" in p.read_text("utf-8")]
    assert offenders == []
