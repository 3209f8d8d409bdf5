"""The Django demo project, configured once per test process."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "django"


def django_demo_app(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The demo's ASGI application and its SQLite file (a temporary one).

    Django is configured once per process, so the first caller chooses the database and
    later ones (another test module) get the same application and file.
    """
    if "chatproject.asgi" not in sys.modules:
        os.environ["CHAT_DB"] = str(tmp_path_factory.mktemp("django") / "chat.sqlite3")
        os.environ["DJANGO_SETTINGS_MODULE"] = "chatproject.settings"
        sys.path.insert(0, str(DEMO))
    from chatproject.asgi import application
    from django.conf import settings

    return application, Path(settings.DATABASES["default"]["NAME"])
