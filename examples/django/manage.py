#!/usr/bin/env python
"""Django's command-line utility for the sse-llm chat demo.

``python manage.py runserver`` serves the demo on http://127.0.0.1:8000 through daphne (first
in ``INSTALLED_APPS``), an ASGI server, so answers stream. The SQLite schema is created when
the app starts (``chatproject/asgi.py``).
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
