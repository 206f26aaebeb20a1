"""Candidate holders: the containers the census measures, found without running host code.

Module-level globals of a module, dict values one level down, attributes of its classes and
of its module-level instances, `functools.lru_cache` wrappers (cache_info().currsize), closure
cells of its functions; live threads grouped by target; asyncio tasks grouped by coroutine.
Each is a `Seen`: a name, a kind and an entry count (and the object, during one step only).
"""

from __future__ import annotations

import collections
import functools
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from leaktrace.analysis import basetype
from leaktrace.analysis.holder_names import module_display_name, qualname, task_label

GROWABLE: tuple[type, ...] = (dict, list, set, collections.deque, bytearray)


@dataclass(frozen=True, slots=True)
class Seen:
    name: str
    kind: str
    size: int
    obj: Any  # only during one step
    foreign: bool = False


def thread_groups() -> Iterator[Seen]:
    """Live threads, counted per target."""
    groups: dict[str, int] = {}
    for th in threading.enumerate():
        d = basetype.instance_dict(th)  # a Thread subclass's property never runs
        target = dict.get(d, "_target") if d is not None else None
        label = qualname(target) if target is not None else qualname(type(th))
        groups[label] = groups.get(label, 0) + 1
    for label, n in groups.items():
        yield Seen(f"threads running {label}", "threads", n, None)


def task_groups(tasks: Iterable[Any]) -> Iterator[Seen]:
    """asyncio tasks, counted per coroutine."""
    groups: dict[str, int] = {}
    for task in list(tasks):
        label = task_label(task)
        groups[label] = groups.get(label, 0) + 1
    for label, n in groups.items():
        yield Seen(f"tasks running {label}", "tasks", n, None)


def module_holders(
    modname: str, mod: types.ModuleType, *, dict_fanout: int, on_error: Callable[[], None]
) -> Iterator[Seen]:
    """A module's growable globals, their dict values one level down, the attributes of its
    classes and instances, lru_cache sizes and closure cells. `on_error` counts a global
    skipped because reading it raised."""
    display = module_display_name(modname, mod)
    for name, value in basetype.module_dict(mod).items():
        if name.startswith("__"):
            continue
        # One bad global (a proxy whose __class__ raises outside a request, say) must
        # not hide the rest of its module.
        try:
            yield from _global(display, modname, name, value, dict_fanout)
        except Exception:  # noqa: BLE001
            on_error()


def _global(
    display: str, modname: str, name: str, value: object, dict_fanout: int
) -> Iterator[Seen]:
    path = f"{display}.{name}"
    yield from _value(path, value, depth=0, dict_fanout=dict_fanout)
    cls = type(value)  # type(), not isinstance(): no __class__ property of a proxy runs
    if issubclass(cls, type) and basetype.class_module(value) == modname:  # type: ignore[arg-type]
        qual = basetype.class_qualname(value)  # type: ignore[arg-type]
        for attr, cval in list(basetype.class_dict(value).items()):  # type: ignore[arg-type]
            if not attr.startswith("__"):
                yield from _value(
                    f"{display}.{qual}.{attr}", cval, depth=1, dict_fanout=dict_fanout
                )
    elif cls is types.FunctionType and value.__module__ == modname:
        yield from _closure(path, value)  # type: ignore[arg-type]
    elif (d := _instance_dict(value)) is not None:
        # Instances of any class (a user's object, a prometheus-client metric and its label
        # children, a library's client), one level down.
        for attr, ival in basetype.dict_items(d):
            if type(attr) is str:
                yield from _value(f"{path}.{attr}", ival, depth=1, dict_fanout=dict_fanout)


def _value(path: str, value: object, *, depth: int, dict_fanout: int) -> Iterator[Seen]:
    cls = type(value)
    if cls is staticmethod or cls is classmethod:
        value = value.__func__  # type: ignore[attr-defined]
        cls = type(value)
    if issubclass(cls, GROWABLE):
        size = size_of(value)
        yield Seen(path, kind(value), size, value)
        if depth == 0 and issubclass(cls, dict) and size <= dict_fanout:
            for key, inner in basetype.dict_items(value):
                if issubclass(type(inner), GROWABLE) and type(key) in (str, int):
                    yield Seen(f"{path}[{key!r}]", kind(inner), size_of(inner), inner)
    elif is_lru_cache(value):
        try:
            size = int(value.cache_info().currsize)  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001
            return
        yield Seen(path, "lru_cache", size, None)
    elif cls is types.FunctionType and depth == 1:
        yield from _closure(path, value)  # type: ignore[arg-type]


def _closure(path: str, fn: types.FunctionType) -> Iterator[Seen]:
    cells = fn.__closure__ or ()
    for var, cell in zip(fn.__code__.co_freevars, cells, strict=True):
        try:
            inner = cell.cell_contents
        except ValueError:  # empty cell
            continue
        if issubclass(type(inner), GROWABLE):
            yield Seen(f"{path}.<closure>.{var}", kind(inner), size_of(inner), inner)


def _instance_dict(value: object) -> dict[str, Any] | None:
    cls = type(value)
    if issubclass(
        cls,
        (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType),
    ):
        return None
    if is_lru_cache(value):
        return None
    return basetype.instance_dict(value)


_LRU_WRAPPER: type = type(functools.lru_cache(maxsize=1)(lambda: None))


def is_lru_cache(value: object) -> bool:
    # By type, not by getattr: a user object's __getattr__ may answer anything (and have
    # side effects). The C wrapper's type is functools._lru_cache_wrapper (by identity: a
    # subclass could override cache_info); the pure-Python fallback wraps a plain function
    # carrying cache_info.
    if type(value) is _LRU_WRAPPER:
        return True
    return type(value) is types.FunctionType and "cache_info" in value.__dict__


def size_of(obj: object) -> int:
    """len() through the built-in base type: a subclass's own __len__ never runs."""
    return basetype.length(obj)


def kind(obj: object) -> str:
    base = basetype.sized_base(obj)
    return base.__name__ if base is not None else "object"
