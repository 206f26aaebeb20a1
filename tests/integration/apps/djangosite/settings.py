"""Settings of the minimal Django project: no database, no apps, no middleware of its own."""

import os

SECRET_KEY = "leaktrace-test-only"
DEBUG = False  # DEBUG keeps every query: a leak of its own
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "djangosite.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
DOWNSTREAM_URL = os.environ.get("DOWNSTREAM_URL", "http://127.0.0.1:9")
