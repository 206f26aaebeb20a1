"""Env var values: one parser per kind, and the reader that applies OTel precedence to them.

A parser turns the raw string into a value or raises ValueError with a reason; the reader
turns that error into one warning naming the variable, and the default is used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import unquote

T = TypeVar("T")

PROTOCOLS = ("grpc", "http/protobuf")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def parse_bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def parse_port(raw: str) -> int:
    port = int(raw)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0..65535")
    return port


def parse_positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError(f"expected a positive integer, got {raw!r}")
    return value


def parse_positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError(f"expected a positive number, got {raw!r}")
    return value


def parse_milliseconds(raw: str) -> float:
    """OTel timeouts are milliseconds; leaktrace keeps seconds."""
    return parse_positive_float(raw) / 1000.0


def parse_fraction(raw: str) -> float:
    value = float(raw)
    if not 0 < value <= 1:
        raise ValueError(f"expected a fraction in (0, 1], got {raw!r}")
    return value


def parse_protocol(raw: str) -> str:
    low = raw.strip().lower()
    if low == "http/json":
        raise ValueError("http/json is not supported; use grpc or http/protobuf")
    if low not in PROTOCOLS:
        raise ValueError(f"expected one of {', '.join(PROTOCOLS)}, got {raw!r}")
    return low


def parse_url(raw: str) -> str:
    value = raw.strip()
    if "://" not in value or value.split("://", 1)[1] == "":
        raise ValueError(f"expected a URL such as http://host:port, got {raw!r}")
    return value


def parse_log_level(raw: str) -> int:
    level = logging.getLevelName(raw.strip().upper())
    if not isinstance(level, int):
        raise ValueError(f"unknown log level {raw!r}")
    return level


def parse_key_values(raw: str) -> dict[str, str]:
    """W3C-baggage-like `k=v,k2=v2` as used by OTEL_RESOURCE_ATTRIBUTES and *_HEADERS."""
    out: dict[str, str] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        if "=" not in item:
            raise ValueError(f"entry {item!r} has no '='")
        key, value = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ValueError(f"entry {item!r} has an empty key")
        out[key] = unquote(value.strip())
    return out


class EnvReader:
    """Reads env vars through parsers; malformed values warn once and fall back."""

    def __init__(self, environ: Mapping[str, str], *, warn: Callable[[str], None]) -> None:
        self._environ = environ
        self.warn = warn
        self._warned: set[str] = set()  # a generic var read for two signals warns once

    def get(self, names: tuple[str, ...], parse: Callable[[str], T], default: T) -> T:
        # First name that is set wins (signal-specific before generic); a malformed value of
        # that name warns and falls back to the default, it does not fall through.
        for name in names:
            raw = self._environ.get(name)
            if raw is None or raw.strip() == "":
                continue
            try:
                return parse(raw)
            except ValueError as exc:
                if name not in self._warned:
                    self._warned.add(name)
                    self.warn(f"ignoring {name}={raw!r}: {exc}; using default {default!r}")
                return default
        return default
