import os

from django.core.asgi import get_asgi_application

from sse_llm import GracefulShutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djproj.settings")
application = GracefulShutdown(get_asgi_application())
