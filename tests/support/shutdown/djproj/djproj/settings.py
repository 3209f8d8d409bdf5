"""A Django project with no database: one streaming view."""

SECRET_KEY = "shutdown-tests"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS: list[str] = []
ROOT_URLCONF = "djproj.urls"
MIDDLEWARE: list[str] = []
DATABASES: dict[str, object] = {}
USE_TZ = True
