"""WSGI entry point, kept to show what happens: the chat's stream refuses to run under WSGI
(sse_llm.UnsupportedServerError) instead of buffering whole answers. Use ``asgi.py``."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
application = get_wsgi_application()
