"""A Django project with no database: one streaming view."""

SECRET_KEY = "shutdown-tests"
DEBUG = False
ALLOWED_HOSTS = ["*"]
# daphne: `django-admin runserver` serves ASGI_APPLICATION (the app wrapped in GracefulShutdown).
INSTALLED_APPS = ["daphne"]
ASGI_APPLICATION = "djproj.asgi.application"
ROOT_URLCONF = "djproj.urls"
MIDDLEWARE = ["djproj.middleware.slow_response"]
DATABASES: dict[str, object] = {}
USE_TZ = True
