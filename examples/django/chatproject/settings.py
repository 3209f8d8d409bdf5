"""Settings of the sse-llm Django chat demo. Everything a test may change comes from the env.

Run it (from ``examples/django``, after ``pip install -r requirements.txt``)::

    python manage.py runserver                      # daphne's ASGI runserver, port 8000
    uvicorn chatproject.asgi:application            # or any ASGI server

- ``CHAT_DB``: the SQLite file (default ``chat.sqlite3`` next to ``manage.py``; created by
  ``migrate``, which ``asgi.py`` runs at start-up, and never committed).
- ``DJANGO_DEBUG``: ``1`` (default) serves the vendored htmx from ``/static/`` itself.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VENDOR = BASE_DIR.parent / "_vendor" / "htmx"

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    # First, so that `manage.py runserver` is daphne's: it serves ASGI_APPLICATION (the
    # stream needs an ASGI server; Django's own runserver is WSGI and would refuse it).
    "daphne",
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "chat",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # GZip on purpose: sse-llm's response must stream through it (Content-Encoding: identity).
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatproject.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
ASGI_APPLICATION = "chatproject.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("CHAT_DB", str(BASE_DIR / "chat.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
STATIC_URL = "/static/"
# The vendored htmx, and the pages' own scripts shared with the FastAPI demo.
STATICFILES_DIRS = [("htmx", VENDOR), ("shared", BASE_DIR.parent / "_shared")]
