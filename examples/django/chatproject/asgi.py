"""ASGI entry point: ``uvicorn --app-dir examples/django chatproject.asgi:application``.

Creates the SQLite schema at start-up (the database is never committed) and, with DEBUG, serves
the vendored htmx files itself so the demo works offline with no ``collectstatic``.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")

import django
from django.conf import settings
from django.core.asgi import get_asgi_application

django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)

application = get_asgi_application()
if settings.DEBUG:
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    application = ASGIStaticFilesHandler(application)  # type: ignore[assignment]
