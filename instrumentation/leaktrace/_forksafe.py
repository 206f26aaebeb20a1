"""A lock another thread held at fork() stays held forever in the child: replace it there.

`renew_lock_after_fork(obj, "_lock")` registers an at-fork hook (held through a weak reference,
so the object can go; at-fork hooks cannot be unregistered) that gives `obj` a fresh lock in a
forked child. For leaktrace objects taken on the host's request path or by exporter threads.
"""

from __future__ import annotations

import os
import threading
import weakref


def _renew(ref: weakref.ReferenceType[object], attr: str) -> None:
    obj = ref()
    if obj is not None:
        setattr(obj, attr, threading.Lock())


def renew_lock_after_fork(obj: object, attr: str) -> None:
    if hasattr(os, "register_at_fork"):
        ref = weakref.ref(obj)
        os.register_at_fork(after_in_child=lambda: _renew(ref, attr))
