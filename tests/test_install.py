"""Installs as a user makes them, each in a brand-new virtualenv: the wheel of this checkout
with one extra (``pip install 'sse-llm[django]'``), dependencies from the package index.

- Each framework binding works with only its own extra installed, with the newest versions
  and with the lowest ones pyproject.toml allows (its ``>=`` floors, the HTML extra's too).
- A binding whose extra is missing raises an ImportError that names the extra to install.
- The README's testing snippet passes under plain pytest with only ``sse-llm[starlette]`` and
  pytest (sse-llm's pytest plugin runs its ``async def`` test).
- The README's quick start runs as written: its ``pip install`` line, its app, ``uvicorn
  app:app`` and its ``curl``, against a local OpenAI-compatible replay server.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import textwrap
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from packaging.version import Version

from .support.servers import free_port, run_uvicorn
from .support.snippets import MODELS, ReadmeReplay, readme_snippet
from .support.venvs import ROOT, from_wheel, installed, make_venv

SCRIPTS = {
    "starlette": """
        import anyio
        from starlette.applications import Starlette
        from starlette.routing import Route
        from sse_llm.starlette import SSEResponse
        from sse_llm.testing import FakeLLM, run_stream

        async def chat(request):
            return SSEResponse(FakeLLM("안녕 🙂", delay=0).stream())

        async def main():
            response = await run_stream(Starlette(routes=[Route("/", chat)]), "/")
            print([e.event for e in response.events], response.body.decode())

        anyio.run(main)
    """,
    "django": """
        import django
        from django.conf import settings

        settings.configure(ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], DEBUG=False)
        django.setup()

        import anyio
        from django.core.asgi import get_asgi_application
        from django.urls import path
        from sse_llm.django import SSEResponse
        from sse_llm.testing import FakeLLM, run_stream

        async def chat(request):
            return SSEResponse(FakeLLM("안녕 🙂", delay=0).stream(), request=request)

        urlpatterns = [path("", chat)]

        async def main():
            response = await run_stream(get_asgi_application(), "/")
            print([e.event for e in response.events], response.body.decode())

        anyio.run(main)
    """,
    "flask": """
        from flask import Flask
        from sse_llm import ServerSentEvent, SSEDecoder
        from sse_llm.flask import SSEResponse

        app = Flask(__name__)

        @app.get("/")
        def chat():
            return SSEResponse(iter(["안녕", " 🙂"]))

        body = b"".join(app.test_client().get("/").response)
        events = [e for e in SSEDecoder().feed(body) if isinstance(e, ServerSentEvent)]
        print([e.event for e in events], body.decode())
    """,
}

#: The FastAPI extra: a generator view with response_class=SSEResponse (docs/fastapi.md's
#: /plain), which FastAPI before 0.134 refused when the app was made.
FASTAPI_SCRIPT = """
    from collections.abc import AsyncIterator

    import anyio
    from fastapi import FastAPI
    from sse_llm.fastapi import SSEResponse
    from sse_llm.testing import FakeLLM, run_stream

    app = FastAPI()

    @app.get("/plain", response_class=SSEResponse)
    async def plain() -> AsyncIterator[str]:
        async for token in FakeLLM("안녕 🙂", delay=0).stream():
            yield token

    async def main():
        response = await run_stream(app, "/plain")
        print([e.event for e in response.events], response.body.decode())

    anyio.run(main)
"""

#: The HTML extra alone: Markdown rendered and sanitised (nh3's allow-list, link schemes).
HTML_SCRIPT = """
    from sse_llm.html import MarkdownRenderer

    html = MarkdownRenderer().render("**안녕** <script>x</script> [a](javascript:x) [b](https://e.x)")
    print(html)
"""
HTML_RENDERED = (
    "<p><strong>안녕</strong> &lt;script&gt;x&lt;/script&gt; [a](javascript:x) "
    '<a href="https://e.x" rel="noopener nofollow">b</a></p>'
)

#: What each venv also checks: importing these modules (their extra missing) must fail with
#: an ImportError naming the extra.
MISSING = {
    "starlette": {
        "sse_llm.html": "html",
        "sse_llm.django": "django",
        "sse_llm.flask": "flask",
        "sse_llm.fastapi": "fastapi",
    },
    "django": {
        "sse_llm.starlette": "starlette",
        "sse_llm.fastapi": "fastapi",
        "sse_llm.websocket": "websocket",
    },
    "flask": {
        "sse_llm.django": "django",
        "sse_llm.starlette": "starlette",
        "sse_llm.websocket": "websocket",
    },
}

VERSIONS = """
import importlib.metadata, json, sys
print(json.dumps({name: importlib.metadata.version(name) for name in sys.argv[1:]}))
"""

HINT = """
import importlib, json, sys
out = {}
for module in sys.argv[1:]:
    try:
        importlib.import_module(module)
        out[module] = None
    except ImportError as exc:
        out[module] = [type(exc).__name__, str(exc)]
print(json.dumps(out))
"""


def run_python(bin_dir: Path, code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "python"), "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


@pytest.mark.parametrize("extra", sorted(SCRIPTS))
def test_a_binding_streams_with_only_its_own_extra_installed(
    extra: str, sse_llm_wheel: Path, tmp_path: Path
) -> None:
    extra_packages = ["pytest"] if extra == "starlette" else []
    bin_dir = make_venv(tmp_path / "venv", [f"{sse_llm_wheel}[{extra}]", *extra_packages])
    others = {"starlette", "django", "flask", "jinja2", "openai", "fastapi"} - {extra}
    if extra == "flask":
        others.discard("jinja2")  # Flask's own dependency
    present = others & installed(bin_dir)
    assert present == set(), f"[{extra}] pulled in {present}"

    run = run_python(bin_dir, SCRIPTS[extra], tmp_path)
    assert run.returncode == 0, run.stderr
    names, _, body = run.stdout.partition("] ")
    assert "안녕" in body and "🙂" in body
    assert names.endswith("'done'"), run.stdout

    # A module whose extra is missing says what to install.
    hints = run_python(bin_dir, HINT, tmp_path, *MISSING[extra])
    assert hints.returncode == 0, hints.stderr

    for module, (kind, message) in json.loads(hints.stdout).items():
        wanted = MISSING[extra][module]
        assert kind == "ImportError", (module, message)
        assert f"pip install 'sse-llm[{wanted}]'" in message, (module, message)

    if extra == "starlette":
        # The README's testing snippet, under plain pytest, in this venv alone.
        folder = tmp_path / "project"
        folder.mkdir()
        (folder / "test_chat.py").write_text(readme_snippet("testing"), encoding="utf-8")
        result = subprocess.run(
            [str(bin_dir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert re.search(r"\b1 passed\b", result.stdout), result.stdout


def floors(extra: str) -> list[str]:
    """``name==version`` for the package's own dependencies and those of ``extra``, each at the
    lowest version pyproject.toml allows."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    pins = []
    for requirement in [*project["dependencies"], *project["optional-dependencies"][extra]]:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][0-9.]*)", requirement)
        assert match, f"not a plain floor: {requirement}"
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


@pytest.mark.parametrize("extra", [*sorted(SCRIPTS), "fastapi", "html"])
def test_each_extra_works_at_its_declared_floors(
    extra: str, sse_llm_wheel: Path, tmp_path: Path
) -> None:
    # Found by installing the floors: nh3 0.2 lacked the clean() arguments sse-llm passes;
    # with anyio 4.4 a Flask process that had streamed hung at exit (the portal's thread).
    pins = floors(extra)
    bin_dir = make_venv(tmp_path / "venv", [f"{sse_llm_wheel}[{extra}]", *pins])
    wanted = dict(pin.split("==") for pin in pins)
    got = run_python(bin_dir, VERSIONS, tmp_path, *wanted)
    assert got.returncode == 0, got.stderr
    assert {name: Version(v) for name, v in json.loads(got.stdout).items()} == {
        name: Version(v) for name, v in wanted.items()
    }
    script = {**SCRIPTS, "fastapi": FASTAPI_SCRIPT, "html": HTML_SCRIPT}[extra]
    run = run_python(bin_dir, script, tmp_path)
    assert run.returncode == 0, run.stderr  # run_python's timeout: a process that hangs fails
    if extra == "html":
        assert run.stdout.strip() == HTML_RENDERED
    else:
        names, _, body = run.stdout.partition("] ")
        assert "안녕" in body and "🙂" in body and names.endswith("'done'"), run.stdout


@pytest.fixture
def readme_replay() -> Iterator[tuple[ReadmeReplay, str]]:
    app = ReadmeReplay()
    with run_uvicorn(app) as base_url:
        yield app, base_url


def test_the_readme_quick_start_runs_as_written_in_a_fresh_virtualenv(
    sse_llm_wheel: Path, tmp_path: Path, readme_replay: tuple[ReadmeReplay, str]
) -> None:
    replay, replay_url = readme_replay
    install, serve, ask = readme_snippet("quickstart-shell").strip().splitlines()
    # 1. pip install 'sse-llm[fastapi,openai]' uvicorn: this checkout's wheel for sse-llm.
    words = shlex.split(install)
    assert words[:2] == ["pip", "install"], install
    bin_dir = make_venv(tmp_path / "venv", from_wheel(words[2:], sse_llm_wheel))
    # 2. the app, saved as app.py, served by `OPENAI_API_KEY=sk-... uvicorn app:app`.
    (tmp_path / "app.py").write_text(readme_snippet("quickstart-app"), encoding="utf-8")
    env_part, _, command = serve.rpartition(" uvicorn ")
    assert env_part.startswith("OPENAI_API_KEY=") and command == "app:app", serve
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env |= {"OPENAI_API_KEY": "test-key", "OPENAI_BASE_URL": replay_url + "/v1"}
    server = subprocess.Popen(
        [str(bin_dir / "uvicorn"), command, "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.2)
        # 3. the curl line, at this port.
        argv = shlex.split(ask.replace("localhost:8000", f"127.0.0.1:{port}"))
        assert argv[0] == "curl" and shutil.which("curl"), ask
        body = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    finally:
        server.terminate()
        server.communicate(timeout=20)
    events = re.findall(r"^event: (\w+)\ndata: (.*)$", body, re.M)
    assert [name for name, _ in events][-1] == "done", body

    done = json.loads(events[-1][1])
    assert done["usage"] is not None  # include_usage asked for it: OpenAI sends usage only then
    sent = next(r for r in reversed(replay.requests) if r.path == "/v1/chat/completions")
    assert sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["model"] in MODELS
