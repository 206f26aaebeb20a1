"""Request validation shared by every service: bad input becomes an ApiError (4xx with a reason).

The services answer the same bad input with the same status and reason, so the leaky and the
fixed service stay interchangeable behind one API test suite.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

#: Largest request body any endpoint accepts; bigger bodies get 413 before they are buffered.
MAX_BODY_BYTES = 16 * 1024
#: Deepest nesting of arrays and objects a body may have. The JSON parser's own limit is the
#: interpreter's (RecursionError near 1,000 levels on 3.11 and 3.12, none at 3,000 on 3.13), so
#: the services set theirs and answer alike on every version.
MAX_JSON_DEPTH = 64

_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class ApiError(Exception):
    """An error the client caused (or a dependency failure): becomes ``{"error": reason}``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class BodySource(Protocol):
    """The part of a Starlette Request that body reading needs (lets tests feed raw chunks)."""

    @property
    def headers(self) -> Mapping[str, str]: ...

    def stream(self) -> Any: ...


def validate_user_id(value: object, *, where: str = "user_id") -> str:
    if not isinstance(value, str):
        raise ApiError(422, f"{where} must be a string, got {_json_type(value)}")
    if not _USER_ID.fullmatch(value):
        raise ApiError(
            422,
            f"{where} must be 1-64 characters of letters, digits, '_', '.', '-' "
            "and start with a letter or digit",
        )
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _reject_constant(name: str) -> Any:
    # json.loads accepts NaN/Infinity by default; they are not JSON.
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Bytes -> JSON object, or ApiError(400) saying what is wrong."""
    if not raw.strip():
        raise ApiError(400, "request body is empty; expected a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"request body is not valid UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ApiError(400, "malformed JSON: nested too deeply") from None
    except ValueError as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None
    if _deeper_than(value, MAX_JSON_DEPTH):
        raise ApiError(400, "malformed JSON: nested too deeply")
    if not isinstance(value, dict):
        raise ApiError(400, f"request body must be a JSON object, got {_json_type(value)}")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    # Iterative: the point is to refuse what recursion could not handle.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > limit:
                return True
            stack.extend(
                (child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)
            )
    return False


def check_content_type(headers: Mapping[str, str]) -> None:
    # A missing Content-Type is tolerated (curl -d, simple clients); a wrong one is not.
    ctype = headers.get("content-type")
    if ctype is None:
        return
    media = ctype.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(415, f"Content-Type must be application/json, got {media or 'empty'!r}")


async def read_json_object(
    request: BodySource, *, max_bytes: int = MAX_BODY_BYTES
) -> dict[str, Any]:
    """Read a bounded body and parse it; never buffers more than max_bytes + one chunk."""
    check_content_type(request.headers)
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise ApiError(400, f"Content-Length is not a number: {declared!r}") from None
        if length > max_bytes:
            raise ApiError(413, f"request body of {length} bytes exceeds the limit of {max_bytes}")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > max_bytes:
            raise ApiError(413, f"request body exceeds the limit of {max_bytes} bytes")
    return parse_json_object(bytes(chunks))


def only_fields(body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise ApiError(422, f"unknown field(s): {shown}; allowed: {', '.join(sorted(allowed))}")


@dataclass(frozen=True)
class LoginRequest:
    user_id: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> LoginRequest:
        only_fields(body, frozenset({"user_id"}))
        if "user_id" not in body:
            raise ApiError(422, "user_id is required")
        return cls(user_id=validate_user_id(body["user_id"]))


@dataclass(frozen=True)
class JobRequest:
    user_id: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JobRequest:
        only_fields(body, frozenset({"user_id"}))
        if "user_id" not in body:
            raise ApiError(422, "user_id is required")
        return cls(user_id=validate_user_id(body["user_id"]))
