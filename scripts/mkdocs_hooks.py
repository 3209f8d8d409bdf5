"""MkDocs hooks for the sse-llm docs (``hooks:`` in mkdocs.yml).

- The wire protocol tables (``docs/protocols.md``) join the nav, after the guides, when the
  page exists: the nav is otherwise fixed, and ``mkdocs build --strict`` fails on a nav entry
  whose page is missing.
- ``docs/changelog.md`` is ``CHANGELOG.md`` (one file in the repository, one page in the site).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def on_config(config: Any) -> Any:
    docs = Path(config["docs_dir"])
    nav = config["nav"]
    if (docs / "protocols.md").is_file() and not _mentions(nav, "protocols.md"):
        at = next((i for i, item in enumerate(nav) if "API reference" in item), len(nav))
        nav.insert(at, {"Wire protocols": "protocols.md"})
    return config


def on_page_read_source(page: Any, config: Any) -> str | None:
    if page.file.src_uri == "changelog.md":
        return (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    return None


def _mentions(nav: Any, page: str) -> bool:
    if isinstance(nav, str):
        return nav == page
    if isinstance(nav, dict):
        return any(_mentions(v, page) for v in nav.values())
    if isinstance(nav, list):
        return any(_mentions(v, page) for v in nav)
    return False
