"""The documentation site: ``mkdocs build --strict`` (no network), then headless Chromium
reads the built index and an API page, served from 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import importlib.util
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_the_site_has_a_page_per_guide_and_per_public_module(site: Path) -> None:
    for guide in ("starlette", "fastapi", "django", "flask", "websocket", "htmx", "resume"):
        assert (site / guide / "index.html").is_file(), guide
    assert (site / "testing" / "index.html").is_file()
    for module in ("core", "starlette", "fastapi", "django", "flask", "websocket", "html"):
        assert (site / "api" / module / "index.html").is_file(), module
    changelog = (site / "changelog" / "index.html").read_text("utf-8")
    assert "NamedEventsFormat" in changelog and "TypedJSONFormat" in changelog


def test_the_api_reference_shows_no_raw_sphinx_roles(site: Path) -> None:
    # Found in review: mkdocstrings renders docstrings as Markdown, so the roles the
    # docstrings use (:class:`~sse_llm.X`) showed as raw text, about 130 times.
    import re

    role = re.compile(r":(?:class|func|meth|attr|data|mod|exc|obj):")
    for page in sorted((site / "api").glob("*/index.html")):
        found = role.findall(page.read_text("utf-8"))
        assert not found, (page.parent.name, len(found))
    core = (site / "api" / "core" / "index.html").read_text("utf-8")
    assert "<code>StreamEngine</code>, which turns any source" in core


def test_the_wire_tables_in_docstrings_render_as_lists(site: Path) -> None:
    # Found in review: the event tables were reStructuredText tables, which mkdocstrings
    # (Markdown) rendered as one paragraph of text with the "=====" rules in it.
    for page in sorted((site / "api").glob("*/index.html")):
        assert "=====" not in page.read_text("utf-8"), page.parent.name
    formats = (site / "api" / "formats" / "index.html").read_text("utf-8")
    assert "<li><code>event: delta</code>" in formats
    assert "<li><code>session</code>" in formats  # TypedJSONFormat's
    websocket = (site / "api" / "websocket" / "index.html").read_text("utf-8")
    assert "<li><code>cancelled</code>" in websocket


def test_type_aliases_and_last_event_id_are_documented(site: Path) -> None:
    core = (site / "api" / "core" / "index.html").read_text("utf-8")
    for alias, words in [
        ("Source", "What a stream is built from"),
        ("LLMEvent", "Any normalised event"),
        ("CompletionHook", "Called once when a stream ends"),
        ("EndReason", "Why a stream ended"),
        ("StreamOptions", "Options of a stream"),
    ]:
        assert f'id="sse_llm.{alias}"' in core, alias
        assert words in core, alias
    fastapi = (site / "api" / "fastapi" / "index.html").read_text("utf-8")
    assert 'id="sse_llm.fastapi.LastEventID"' in fastapi
    assert "reconnecting" in fastapi


@pytest.mark.browser
def test_chromium_shows_the_built_index_and_an_api_page(served: str, browser: Browser) -> None:
    page = browser.new_page()
    # Only 127.0.0.1 is reached: Material's repository badge asks the GitHub API, refused here.
    page.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(served) else route.abort(),
    )
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(served + "/")
        assert page.title().startswith("sse-llm")
        assert (page.locator("h1").first.text_content() or "").startswith("sse-llm")
        assert page.get_by_role("link", name="FastAPI").count() >= 1
        page.goto(served + "/api/core/")
        page.wait_for_selector('[id="sse_llm.collect"]')
        assert "Why a stream ended" in (page.text_content("body") or "")
        page.click("text=sse_llm.fastapi")
        page.wait_for_selector('[id="sse_llm.fastapi.SSERoute"]')
    finally:
        page.close()
    assert errors == []


def _hooks() -> Any:
    spec = importlib.util.spec_from_file_location("mkdocs_hooks", ROOT / "scripts/mkdocs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_protocols_page_joins_the_nav_only_when_it_exists(tmp_path: Path) -> None:
    nav = [{"Home": "index.md"}, {"Guides": ["a.md"]}, {"API reference": ["api/core.md"]}]
    config = _hooks().on_config({"docs_dir": str(tmp_path), "nav": [dict(i) for i in nav]})
    assert config["nav"] == nav
    (tmp_path / "protocols.md").write_text("# Wire protocols\n", encoding="utf-8")
    config = _hooks().on_config({"docs_dir": str(tmp_path), "nav": [dict(i) for i in nav]})
    assert config["nav"][2] == {"Wire protocols": "protocols.md"}
    assert config["nav"][3] == {"API reference": ["api/core.md"]}
