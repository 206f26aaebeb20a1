"""A minimal Django project (djangosite/), run the usual way; it imports no telemetry.

    DJANGO_SETTINGS_MODULE=djangosite.settings DOWNSTREAM_URL=http://127.0.0.1:9000 \
        python manage.py runserver --noreload 127.0.0.1:8080
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djangosite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
