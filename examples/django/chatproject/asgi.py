"""ASGI entry point of the Django demo: every sse-llm stream needs an ASGI server.

From ``examples/django`` (``pip install -r requirements.txt`` first), then open
http://127.0.0.1:8000::

    python manage.py runserver                  # daphne's runserver ('daphne' in INSTALLED_APPS)
    uvicorn chatproject.asgi:application        # or uvicorn (add --port 8000 --reload ...)

From the repository root: ``make demo-django`` (runserver), or
``uvicorn --app-dir examples/django chatproject.asgi:application``.

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
