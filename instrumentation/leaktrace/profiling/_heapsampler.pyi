# Type stub for the C extension (instrumentation/leaktrace/profiling/_heapsampler.c).
from typing import Any

SUPPORTED: int
MAX_FRAMES_CAP: int

def start(
    *,
    sample_bytes: int,
    max_frames: int,
    max_tracked: int,
    max_stacks: int,
    context_var: Any,
    span_key: Any,
) -> None: ...
def stop() -> bool: ...
def after_fork_child() -> bool: ...
def running() -> bool: ...
def stats() -> dict[str, Any]: ...
def snapshot(
    reset_alloc: bool = ...,
    include_alloc: bool = ...,
) -> tuple[
    list[tuple[int, int, int, int, int, float]],
    list[tuple[int, int, int, int, float, float]],
    tuple[float, float],
    int,
]: ...
def stack(stack_id: int, /) -> tuple[tuple[tuple[Any, int], ...], bool] | None: ...
def compact_stacks() -> int: ...
