"""Reading the host's objects without running their code.

The census runs on the hunter thread and looks at module globals, class attributes and
instances of the user's modules, the standard library and site-packages. Any Python-level code
it triggers (a dict subclass's `__len__`, a property, `__getattr__`, a metaclass's `__module__`
property, a `__sizeof__` override) would run foreign code at an arbitrary moment on a thread
that is not the host's. So every read here goes through the built-in base type's own slot or
descriptor, found by walking the real MRO (`type.__dict__['__mro__']`), never through
`getattr` or an operator on the object itself.
"""

from __future__ import annotations

import collections
import types
from collections.abc import Iterator
from typing import Any

_TYPE_DICT: Any = type.__dict__["__dict__"]  # getset: a class's own namespace (mappingproxy)
_TYPE_MRO: Any = type.__dict__["__mro__"]
_TYPE_MODULE: Any = type.__dict__["__module__"]
_TYPE_QUALNAME: Any = type.__dict__["__qualname__"]
_TYPE_FLAGS: Any = type.__dict__["__flags__"]
_MODULE_DICT: Any = vars(types.ModuleType)["__dict__"]
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by a class statement (may override)
_GETSET = type(_TYPE_DICT)  # getset_descriptor

#: Containers whose length the census measures, most derived first: a deque or OrderedDict is
#: read through its own C type, a user subclass through the built-in it extends.
SIZED_BASES: tuple[type, ...] = (
    collections.OrderedDict,
    collections.defaultdict,
    dict,
    list,
    set,
    frozenset,
    collections.deque,
    bytearray,
)


def mro(cls: type) -> tuple[type, ...]:
    return tuple(_TYPE_MRO.__get__(cls, type))


def class_dict(cls: type) -> Any:
    """The class's own namespace (a mappingproxy; `.get`/`.items` are C code)."""
    return _TYPE_DICT.__get__(cls, type)


def module_dict(mod: types.ModuleType) -> dict[str, Any]:
    return dict.copy(_MODULE_DICT.__get__(mod, types.ModuleType))


def module_get(mod: Any, name: str) -> Any:
    """A module attribute from its namespace (a module's `__getattr__` never runs)."""
    if not isinstance(mod, types.ModuleType):
        return None
    return dict.get(_MODULE_DICT.__get__(mod, types.ModuleType), name)


def class_module(cls: type) -> str | None:
    value = _TYPE_MODULE.__get__(cls, type)
    return value if type(value) is str else None


def class_qualname(cls: type) -> str:
    value = _TYPE_QUALNAME.__get__(cls, type)
    return value if type(value) is str else "?"


def is_heap_type(cls: type) -> bool:
    return bool(_TYPE_FLAGS.__get__(cls, type) & _HEAPTYPE)


def sized_base(obj: Any) -> type | None:
    """The built-in container type `obj` is (or subclasses), if any."""
    cls = type(obj)
    for base in SIZED_BASES:
        if issubclass(cls, base):  # type.__subclasscheck__ on the real MRO: no user code
            return base
    return None


def length(obj: Any) -> int:
    """len() through the built-in base type: a subclass's `__len__` never runs."""
    base = sized_base(obj)
    if base is None:
        return 0
    try:
        sized: Any = base
        return int(sized.__len__(obj))
    except Exception:  # noqa: BLE001 - mutated under us
        return 0


def builtin_sizeof(obj: Any) -> int:
    """`__sizeof__` of the first built-in type in the MRO (a user override never runs), plus
    the GC header where sys.getsizeof would add it (same as sys.getsizeof for built-ins)."""
    import sys

    for klass in mro(type(obj)):
        if not is_heap_type(klass):
            try:
                builtin: Any = klass
                size = int(builtin.__sizeof__(obj))
            except Exception:  # noqa: BLE001
                return 0
            # GC-tracked objects carry a header that sys.getsizeof counts.
            if _TYPE_FLAGS.__get__(type(obj), type) & (1 << 14):  # Py_TPFLAGS_HAVE_GC
                size += sys.getsizeof([]) - [].__sizeof__()
            return size
    return 0


def instance_dict(obj: Any) -> dict[str, Any] | None:
    """An instance's `__dict__` through the built-in slot descriptor, None when it has none or
    when a class in the MRO defines `__dict__` as anything else (a property: code)."""
    cls = type(obj)
    if issubclass(cls, (type, types.ModuleType)):
        return None
    for klass in mro(cls):
        descr = class_dict(klass).get("__dict__")
        if descr is None:
            continue
        if type(descr) is not _GETSET:
            return None
        try:
            d = descr.__get__(obj, cls)
        except Exception:  # noqa: BLE001
            return None
        return d if type(d) is dict else None
    return None


def dict_items(obj: Any) -> list[tuple[Any, Any]]:
    """A snapshot of a dict's items through dict itself (a subclass's `items` never runs)."""
    try:
        return list(dict.items(obj))
    except RuntimeError:  # changed size while copied
        return []


def last_items(obj: Any, n: int) -> list[Any]:
    """The last `n` entries added, where the container keeps insertion order, through the base
    type: (key, value) for dicts, items for lists and deques, any `n` for sets."""
    base = sized_base(obj)
    out: list[Any] = []
    try:
        if base in (dict, collections.OrderedDict, collections.defaultdict):
            it: Iterator[Any] = reversed(dict.items(obj))
            for _ in range(n):
                out.append(next(it))
        elif base is list:
            size = list.__len__(obj)
            out.extend(list.__getitem__(obj, -i) for i in range(1, min(n, size) + 1))
        elif base is collections.deque:
            size = collections.deque.__len__(obj)
            out.extend(collections.deque.__getitem__(obj, -i) for i in range(1, min(n, size) + 1))
        elif base in (set, frozenset):
            it = base.__iter__(obj)
            for _ in range(n):
                out.append(next(it))
    except (StopIteration, RuntimeError, IndexError):
        pass
    return out


def children(obj: Any, limit: int = 8) -> list[Any]:
    """Direct referents worth sizing or locating, read through built-in types only."""
    cls = type(obj)
    try:
        if issubclass(cls, tuple):
            return list(tuple.__getitem__(obj, slice(0, limit)))
        if sized_base(obj) in (dict, collections.OrderedDict, collections.defaultdict):
            return [v for _, v in list(dict.items(obj))[:limit]]
        if issubclass(cls, list):
            return list(list.__getitem__(obj, slice(0, limit)))
        if issubclass(cls, collections.deque):
            return [
                collections.deque.__getitem__(obj, i)
                for i in range(min(limit, collections.deque.__len__(obj)))
            ]
    except (RuntimeError, IndexError):  # mutated by another thread while we looked
        return []
    if cls is types.FunctionType:
        out = []
        for cell in obj.__closure__ or ():
            try:
                out.append(cell.cell_contents)
            except ValueError:
                continue
        return out[:limit]
    d = instance_dict(obj)
    if d is not None:
        try:
            return list(dict.values(d))[:limit]
        except RuntimeError:
            return []
    return []
