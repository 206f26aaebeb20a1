"""A small dependency-injection container with explicit lifetimes.

- SINGLETON: one instance per container, built on first use, closed with the container.
- SCOPED: one instance per scope (here: per HTTP request), closed when the scope ends.
- TRANSIENT: a new instance on every resolve, owned by whoever asked.

A singleton may not depend on a scoped object (it would capture one request's object for the
life of the process); resolving one from a singleton factory raises LifetimeError.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, Self, TypeVar, cast

T = TypeVar("T")


class Lifetime(enum.Enum):
    SINGLETON = "singleton"
    SCOPED = "scoped"
    TRANSIENT = "transient"


class LifetimeError(LookupError):
    pass


class Resolver(Protocol):
    def resolve(self, key: type[T]) -> T: ...


@dataclass(frozen=True)
class Registration:
    factory: Callable[[Resolver], Any]
    lifetime: Lifetime


def _close(instance: object) -> None:
    close = getattr(instance, "close", None)
    if callable(close):
        close()


class Container:
    def __init__(self) -> None:
        self._registrations: dict[type[Any], Registration] = {}
        self._singletons: dict[type[Any], Any] = {}
        self._creation_order: list[Any] = []
        self._lock = threading.RLock()
        self._closed = False

    def register(self, key: type[T], factory: Callable[[Resolver], T], lifetime: Lifetime) -> None:
        with self._lock:
            if key in self._registrations:
                raise ValueError(f"{key.__name__} is already registered")
            self._registrations[key] = Registration(factory, lifetime)

    def instance(self, key: type[T], value: T) -> None:
        """Register an object built outside (e.g. the Telemetry) as a singleton the container does not close."""
        with self._lock:
            self.register(key, lambda _: value, Lifetime.SINGLETON)
            self._singletons[key] = value

    def lifetime_of(self, key: type[Any]) -> Lifetime:
        return self._registration(key).lifetime

    def _registration(self, key: type[Any]) -> Registration:
        try:
            return self._registrations[key]
        except KeyError:
            raise LookupError(f"{key.__name__} is not registered") from None

    def resolve(self, key: type[T]) -> T:
        reg = self._registration(key)
        if reg.lifetime is Lifetime.SCOPED:
            raise LifetimeError(
                f"{key.__name__} is scoped: resolve it from a scope, not from the root"
            )
        if reg.lifetime is Lifetime.TRANSIENT:
            return cast(T, reg.factory(self))
        with self._lock:
            if self._closed:
                raise RuntimeError("container is closed")
            if key not in self._singletons:
                value = reg.factory(self)
                self._singletons[key] = value
                self._creation_order.append(value)
            return cast(T, self._singletons[key])

    def scope(self) -> RequestScope:
        return RequestScope(self)

    def close(self) -> None:
        """Close singletons in reverse creation order (dependents before their dependencies)."""
        with self._lock:
            self._closed = True
            owned, self._creation_order = self._creation_order, []
        for instance in reversed(owned):
            _close(instance)


class RequestScope:
    def __init__(self, root: Container) -> None:
        self._root = root
        self._scoped: dict[type[Any], Any] = {}
        self._order: list[Any] = []

    def resolve(self, key: type[T]) -> T:
        reg = self._root._registration(key)
        if reg.lifetime is Lifetime.SINGLETON:
            return self._root.resolve(key)
        if reg.lifetime is Lifetime.TRANSIENT:
            return cast(T, reg.factory(self))
        if key not in self._scoped:
            value = reg.factory(self)
            self._scoped[key] = value
            self._order.append(value)
        return cast(T, self._scoped[key])

    def close(self) -> None:
        owned, self._order, self._scoped = self._order, [], {}
        for instance in reversed(owned):
            _close(instance)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
