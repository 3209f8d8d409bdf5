"""The code blocks of README.md and docs/*.md, and the replay server the README's provider
snippets talk to.

Every fenced block is announced by a marker on the line before it, ``<!-- snippet: NAME -->``
(invisible once rendered: on GitHub, PyPI and the docs site). ``tests/test_snippets.py`` runs
each block by its name, as a user would paste it; what a snippet assumes but does not define
(an ``app``, ``llm``, ``save``) comes from a small namespace there.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fixtures import FIXTURES
from .replay import ReplayApp, RequestRecord

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# docs/protocols.md (the wire protocol tables) is another piece of work, with its own checks.
NOT_HERE = {"protocols.md"}

_FENCE = re.compile(r"^```(?P<lang>[\w-]*)[^\n]*\n(?P<code>.*?)^```[ \t]*$", re.M | re.S)
_MARKER = re.compile(r"<!-- snippet: (?P<name>[\w-]+) -->\s*$")


@dataclass(frozen=True)
class Snippet:
    file: Path
    line: int
    lang: str
    name: str | None  # None: the block has no marker
    code: str

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.name or f'line {self.line}'}"


def snippets_of(path: Path) -> list[Snippet]:
    text = path.read_text(encoding="utf-8")
    out = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.search(before)
        line = text.count("\n", 0, match.start()) + 1
        name = marker.group("name") if marker else None
        out.append(Snippet(path, line, match.group("lang"), name, match.group("code")))
    return out


def documentation_files() -> list[Path]:
    pages = sorted(p for p in DOCS.rglob("*.md") if p.name not in NOT_HERE)
    return [README, *pages]


def all_snippets() -> list[Snippet]:
    return [s for path in documentation_files() for s in snippets_of(path)]


def readme_snippet(name: str) -> str:
    [snippet] = [s for s in snippets_of(README) if s.name == name]
    return snippet.code


def extras() -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    return set(config["project"]["optional-dependencies"])


# -- a replay server for the model names the README uses ------------------------------------------

#: The recordings that stand in for the models the snippets name.
MODELS = {
    "gpt-4o-mini": "openai-chat/langchaingo-gpt-basic-usage.sse",
    "claude-sonnet-4-6": "anthropic/llm-thinking.sse",
}


class ReadmeReplay(ReplayApp):
    """The replay server, answering for the README's model names, and like OpenAI in one more
    way: a Chat Completions stream carries the usage chunk only when the request asked for it
    with ``stream_options={"include_usage": True}``."""

    def __init__(self) -> None:
        super().__init__(FIXTURES)

    def _resolve(self, selector: str | None, default_dir: str) -> Path | None:
        return super()._resolve(MODELS.get(selector or "", selector), default_dir)

    async def _stream(
        self, rec: RequestRecord, chunks: list[bytes], delay: float, receive: Any, send: Any
    ) -> None:
        body = rec.body if isinstance(rec.body, dict) else {}
        asked = (body.get("stream_options") or {}).get("include_usage") is True
        if rec.path == "/v1/chat/completions" and not asked:
            chunks = [c for c in chunks if not _usage_only(c)]
        await super()._stream(rec, chunks, delay, receive, send)


def _usage_only(chunk: bytes) -> bool:
    """An OpenAI stream's last chunk: no choices, only ``usage``."""
    for line in chunk.decode("utf-8", "replace").splitlines():
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            try:
                data = json.loads(line[5:])
            except ValueError:
                return False
            return data.get("choices") == [] and data.get("usage") is not None
    return False
