"""Each framework binding works with only its own extra installed, in a brand-new virtualenv.

The package is built into a wheel once, then installed with one extra per fresh venv
(``pip install 'sse-llm[django]'`` as a user would, dependencies from the package index), and a
small script imports that binding and streams an answer through it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INSTALL_TIMEOUT = 300  # seconds: dependencies come from the package index

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
        from sse_llm import SSEDecoder
        from sse_llm.flask import SSEResponse

        app = Flask(__name__)

        @app.get("/")
        def chat():
            return SSEResponse(iter(["안녕", " 🙂"]))

        body = b"".join(app.test_client().get("/").response)
        print([e.event for e in SSEDecoder().feed(body)], body.decode())
    """,
}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        timeout=INSTALL_TIMEOUT,
    )
    [built] = out.glob("sse_llm-*.whl")
    yield built


@pytest.mark.parametrize("extra", sorted(SCRIPTS))
def test_a_binding_streams_with_only_its_own_extra_installed(
    extra: str, wheel: Path, tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{wheel}[{extra}]"],
        check=True,
        timeout=INSTALL_TIMEOUT,
    )
    installed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.lower()
    others = {"starlette", "django", "flask", "jinja2", "openai", "fastapi"} - {extra}
    if extra == "flask":
        others.discard("jinja2")  # Flask's own dependency
    present = {name for name in others if f"\n{name}==" in f"\n{installed}"}
    assert present == set(), f"[{extra}] pulled in {present}"
    run = subprocess.run(
        [str(python), "-c", textwrap.dedent(SCRIPTS[extra])],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    names, _, body = run.stdout.partition("] ")
    assert "안녕" in body and "🙂" in body
    assert names.endswith("'done'"), run.stdout
