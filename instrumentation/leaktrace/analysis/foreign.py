"""Holders outside the user's modules: containers of the standard library and site-packages.

A leak is often kept by a library's table rather than the user's: `logging.getLogger(name)` per
request grows `logging.Logger.manager.loggerDict`, a per-request label grows a prometheus-client
metric's children, a library's module-level registry keeps what it was handed. `ForeignScan`
finds such containers in every module that is neither user code nor telemetry, in two tiers so
the census keeps its per-step time budget whatever the number of modules:

- discovery, resumable, with whatever budget a census step has left: module globals that are
  containers, class attributes of the module's classes, attributes of module-level instances
  and of instances held in class attributes (`logging.Logger.manager.loggerDict`). Each found
  container is remembered by its *path* (module name and attribute names), never by reference;
- measurement, every census cycle: each remembered path is resolved again (a few dict lookups)
  and its length read. Most never change: they cost a path and two integers. One that grows by
  `min_growth` entries is handed to the census as a candidate like a user holder, under its
  qualified name.

Every read goes through `basetype` (built-in slots only): no `__len__`, property, `__getattr__`
or metaclass attribute of the host or its libraries runs on the hunter thread.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from leaktrace.analysis import basetype
from leaktrace.analysis.callpath import FrameFilter

#: Module name prefixes whose containers are telemetry's own (never a holder of a user leak).
TELEMETRY_MODULES: tuple[str, ...] = ("leaktrace", "opentelemetry", "pyroscope")

# Steps of a path from the module namespace: a global, an attribute in a class's own
# namespace, an attribute in an instance's __dict__.
_GLOBAL, _CLASS_ATTR, _INSTANCE_ATTR = 0, 1, 2
_Path = tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class ForeignConfig:
    max_paths: int = 8192  # remembered containers (a path and two integers each)
    min_growth: int = 3  # entries above the lowest length seen before it becomes a candidate
    rescan_cycles: int = 30  # a module is scanned again after this many census cycles


@dataclass(frozen=True, slots=True)
class Found:
    name: str
    kind: str
    size: int
    obj: Any  # only while the census step runs


class _Light:
    __slots__ = ("kind", "low", "module", "path", "promoted")

    def __init__(self, module: str, path: _Path, kind: str, size: int) -> None:
        self.module = module
        self.path = path
        self.kind = kind
        self.low = size
        self.promoted = False


class ForeignScan:
    def __init__(
        self,
        config: ForeignConfig = ForeignConfig(),
        *,
        frame_filter: FrameFilter,
        modules: Callable[[], Mapping[str, types.ModuleType]] = lambda: sys.modules,
        is_user_module: Callable[[str, object], bool],
    ) -> None:
        self._config = config
        self._filter = frame_filter
        self._modules = modules
        self._is_user = is_user_module
        self._paths: dict[str, _Light] = {}
        self._scanned: dict[str, int] = {}  # module name -> cycle of its last scan
        self._todo: list[str] = []
        self._cycle = 0
        self.errors = 0

    @property
    def paths(self) -> int:
        return len(self._paths)

    # --- discovery -------------------------------------------------------------------------
    def discover(self, deadline: float, clock: Callable[[], float]) -> None:
        """Scan foreign modules until `deadline` (monotonic); resumes where it stopped."""
        if not self._todo:
            self._cycle += 1
            mods = self._modules()
            due = self._cycle - self._config.rescan_cycles
            self._todo = sorted(
                (
                    n
                    for n in list(mods)
                    if self._scanned.get(n, -(10**9)) <= due and self._is_foreign(n, mods.get(n))
                ),
                reverse=True,
            )
        while self._todo and clock() < deadline:
            name = self._todo.pop()
            mod = self._modules().get(name)
            self._scanned[name] = self._cycle
            if len(self._scanned) > 65536:
                self._scanned.clear()
            if mod is None:
                continue
            try:
                self._scan(name, mod)
            except Exception:  # noqa: BLE001 - a module changing under us
                self.errors += 1

    def _is_foreign(self, name: str, mod: object) -> bool:
        if name == "__main__" or name.startswith(TELEMETRY_MODULES) or self._is_user(name, mod):
            return False
        file = basetype.module_get(mod, "__file__")
        return type(file) is str and not self._filter.is_telemetry(file)

    def _scan(self, modname: str, mod: types.ModuleType) -> None:
        seen: set[int] = set()  # one name per container: the first path found in namespace order
        for name, value in basetype.module_dict(mod).items():
            if name.startswith("__"):
                continue
            path: _Path = ((_GLOBAL, name),)
            cls = type(value)
            if self._container(modname, f"{modname}.{name}", path, value, seen):
                continue
            if issubclass(cls, type):
                if basetype.class_module(value) != modname:
                    continue  # an imported class is scanned in its own module
                qual = basetype.class_qualname(value)
                for attr, cval in list(basetype.class_dict(value).items()):
                    if attr.startswith("__"):
                        continue
                    cpath = (*path, (_CLASS_ATTR, attr))
                    if not self._container(modname, f"{modname}.{qual}.{attr}", cpath, cval, seen):
                        self._instance(modname, f"{modname}.{qual}.{attr}", cpath, cval, seen)
            elif not issubclass(
                cls, (types.ModuleType, types.FunctionType, types.BuiltinFunctionType)
            ):
                self._instance(modname, f"{modname}.{name}", path, value, seen)

    def _instance(
        self, modname: str, display: str, path: _Path, value: object, seen: set[int]
    ) -> None:
        d = basetype.instance_dict(value)
        if d is None:
            return
        for attr, ival in basetype.dict_items(d):
            if type(attr) is str and not attr.startswith("__"):
                self._container(
                    modname, f"{display}.{attr}", (*path, (_INSTANCE_ATTR, attr)), ival, seen
                )

    def _container(
        self, modname: str, name: str, path: _Path, value: object, seen: set[int]
    ) -> bool:
        base = basetype.sized_base(value)
        if base is None or base is frozenset:
            return False
        if id(value) in seen or name in self._paths:
            return True
        seen.add(id(value))
        if len(self._paths) < self._config.max_paths:
            self._paths[name] = _Light(modname, path, base.__name__, basetype.length(value))
        return True

    # --- measurement -----------------------------------------------------------------------
    def measure(self) -> Iterator[Found]:
        """Every remembered container's length; the grown ones come out as candidates."""
        mods = self._modules()
        gone: list[str] = []
        for name, light in list(self._paths.items()):
            obj = _resolve(mods.get(light.module), light.path)
            if obj is None or basetype.sized_base(obj) is None:
                gone.append(name)
                continue
            size = basetype.length(obj)
            if not light.promoted:
                if size - light.low >= self._config.min_growth:
                    light.promoted = True
                else:
                    light.low = min(light.low, size)
                    continue
            yield Found(name, light.kind, size, obj)
        for name in gone:
            del self._paths[name]


def _resolve(mod: object, path: _Path) -> Any:
    """Follow a path again through namespaces only; None when any step is gone."""
    if mod is None:
        return None
    value: Any = mod
    for step, attr in path:
        if step == _GLOBAL:
            value = basetype.module_get(value, attr)
        elif step == _CLASS_ATTR:
            if not issubclass(type(value), type):
                return None
            value = basetype.class_dict(value).get(attr)
        else:
            d = basetype.instance_dict(value)
            value = None if d is None else dict.get(d, attr)
        if value is None:
            return None
    return value
