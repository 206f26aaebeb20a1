"""Views of the minimal Django project.

POST /orders submits the archiving to a ThreadPoolExecutor, and the pool thread keeps the
archived order in ARCHIVE: a leak that happens in an executor task the request submitted.
GET /proxy calls a downstream service with requests.
"""

from concurrent.futures import ThreadPoolExecutor

import requests
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path

POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="archive")
ARCHIVE: list[bytearray] = []


def archive_order(size: int) -> None:
    ARCHIVE.append(bytearray(size))  # LEAK-SITE


def place_order(request: HttpRequest) -> JsonResponse:
    POOL.submit(archive_order, 8192)
    return JsonResponse({"status": "accepted"}, status=202)


def proxy(request: HttpRequest) -> JsonResponse:
    reply = requests.get(f"{settings.DOWNSTREAM_URL}/echo", timeout=5)
    return JsonResponse({"downstream": reply.status_code})


urlpatterns = [path("orders", place_order), path("proxy", proxy)]
