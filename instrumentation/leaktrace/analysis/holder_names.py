"""What a holder is called in a report: modules, threads' targets and tasks' coroutines,
named through the objects' own C attributes (no user `__getattr__` or property runs)."""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterable, Mapping
from typing import Any

from leaktrace.analysis import basetype


def qualname(obj: object) -> str:
    # A thread's target: a function or a class (read through their own C attributes), else
    # only its type is named (a callable object's __getattr__ never runs).
    if type(obj) in (types.FunctionType, types.BuiltinFunctionType):
        mod, name = obj.__module__ or "", obj.__qualname__  # type: ignore[attr-defined]
    elif type(obj) is types.MethodType:
        return qualname(obj.__func__)
    elif issubclass(type(obj), type):
        mod, name = basetype.class_module(obj) or "", basetype.class_qualname(obj)  # type: ignore[arg-type]
    else:
        cls = type(obj)
        mod, name = basetype.class_module(cls) or "", basetype.class_qualname(cls)
    if mod == "__main__":
        main = sys.modules.get("__main__")
        mod = module_display_name("__main__", main) if main is not None else mod
    return f"{mod}.{name}" if mod else str(name)


def distinct_modules(modules: Mapping[str, object], names: Iterable[str]) -> list[str]:
    """Sorted, one name per module object: an alias of the main module (multiprocessing's
    `__mp_main__`) would name the same globals twice; `__main__` sorts first and is kept."""
    out: list[str] = []
    seen: set[int] = set()
    for name in sorted(names):
        mod = modules.get(name)
        key = id(mod) if mod is not None else id(name)
        if key not in seen:
            seen.add(key)
            out.append(name)
    return out


def task_label(task: object) -> str:
    """The coroutine's qualified name, through asyncio's own Task.get_coro and the coroutine
    type's getset (a Task subclass's override or a custom awaitable's attributes never run)."""
    import asyncio

    cls = type(task)
    if issubclass(cls, asyncio.Task):
        coro: Any = None
        try:
            coro = asyncio.Task.get_coro(task)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001
            coro = None
        if type(coro) in (types.CoroutineType, types.GeneratorType, types.AsyncGeneratorType):
            return str(coro.__qualname__)
    return basetype.class_qualname(cls)


def module_display_name(modname: str, mod: object) -> str:
    """`__main__` is named after what ran: `-m pkg.mod` keeps its spec name, a script its stem."""
    if modname != "__main__":
        return modname
    spec = basetype.module_get(mod, "__spec__")
    spec_dict = basetype.instance_dict(spec) if spec is not None else None
    spec_name = spec_dict.get("name") if spec_dict is not None else None
    if type(spec_name) is str and spec_name:
        return spec_name
    file = basetype.module_get(mod, "__file__")
    if type(file) is str:
        return os.path.splitext(os.path.basename(file))[0]
    return modname
