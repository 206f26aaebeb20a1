"""Delivery of the report to a webhook: bounded, retried once, never raising."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import DEFAULT_TIMEOUT_S


@dataclass(frozen=True)
class WebhookResult:
    url: str
    delivered: bool
    status: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "delivered": self.delivered, "status": self.status,
                "error": self.error}  # fmt: skip


def post_webhook(
    url: str,
    payload: Mapping[str, Any],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    attempts: int = 2,
    opener: urllib.request.OpenerDirector | None = None,
) -> WebhookResult:
    """POST the report as JSON; retries once on connection errors and 5xx. Never raises."""
    opener = opener if opener is not None else urllib.request.build_opener()
    body = json.dumps(payload).encode()
    result = WebhookResult(url, False, error="not attempted")
    for _ in range(max(attempts, 1)):
        request = urllib.request.Request(
            url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "leaktrace-gate"},
        )  # fmt: skip
        try:
            with opener.open(request, timeout=timeout_s) as resp:
                resp.read(64 * 1024)
                return WebhookResult(url, True, status=int(resp.status))
        except urllib.error.HTTPError as exc:
            result = WebhookResult(url, False, status=int(exc.code), error=f"HTTP {exc.code}")
            if exc.code < 500:
                return result
        except (urllib.error.URLError, OSError, ValueError) as exc:
            result = WebhookResult(url, False, error=str(getattr(exc, "reason", exc)))
    return result
