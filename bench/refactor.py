"""Before/after benchmark of the leak fix: identical load at the leaky and the fixed service.

    python bench/refactor.py --duration 60 [--rate 50] [--json out.json]

Starts downstream, leaky and fixed on 127.0.0.1 (free ports), warms both up, samples each
service, drives the same seeded request sequence at both at once, samples again, and reports per
service: RSS growth, live-heap growth, open fds, threads, net allocations per request and heap
growth per request, then ``reduction = 1 - fixed.rss_growth_bytes / leaky.rss_growth_bytes``.

Where each figure comes from (all measured at run time, nothing assumed):
- RSS, open fds, threads: psutil on the service's PID.
- live heap: ``leaktrace_heap_live_bytes`` from the service's /metrics when leaktrace's heap
  sampler runs; otherwise ``service_malloc_in_use_bytes`` (glibc mallinfo2 in-use bytes, which
  does not see pymalloc's own arenas). The JSON says which one (``heap_method``).
- requests: ``service_requests_total`` from /metrics (requests the service actually served).
- allocations per request: delta of ``service_allocated_blocks`` (``sys.getallocatedblocks()``)
  over delta requests. That is NET blocks retained per request, not the total allocation count
  Go's allocs/op reports; for a leak it is the figure that matters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.common.launch import running  # noqa: E402 - after the sys.path entry it needs
from services.measure import LoadShape, compare, drive_both, reduction, render_table, sample  # noqa: E402


# --- main -----------------------------------------------------------------------------------
def _positive(kind: type) -> Any:
    def parse(raw: str) -> Any:
        try:
            value = kind(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {raw!r}") from None
        if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"expected a positive number, got {raw!r}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Leaky vs fixed service under identical load.")
    p.add_argument(
        "--duration", type=_positive(float), default=60.0, help="measured seconds (default 60)"
    )
    p.add_argument(
        "--rate", type=_positive(float), default=50.0, help="req/s per service (default 50)"
    )
    p.add_argument("--users", type=_positive(int), default=10, help="active users (default 10)")
    p.add_argument("--churn", type=float, default=0.5, help="new users per second (default 0.5)")
    p.add_argument(
        "--warmup",
        type=float,
        default=10.0,
        help="warm-up seconds before the baseline (default 10)",
    )
    p.add_argument("--concurrency", type=_positive(int), default=64)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    p.add_argument(
        "--heap-sampler",
        action="store_true",
        help="enable leaktrace profiling so leaktrace_heap_live_bytes is exported",
    )
    return p


def service_env(heap_sampler: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            # No collector runs here: exporting would only add retry noise to the figures.
            "LEAKTRACE_TRACES_ENABLED": "false",
            "LEAKTRACE_LOGS_ENABLED": "false",
            "LEAKTRACE_PROFILING_ENABLED": "true" if heap_sampler else "false",
            "LEAKTRACE_LOG_CONSOLE": "true",
            "PYTHONPATH": str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        }
    )
    return env


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = service_env(args.heap_sampler)
    shape = LoadShape(
        rate=args.rate,
        users=args.users,
        churn=args.churn,
        concurrency=args.concurrency,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory(prefix="bench-refactor-") as tmp, ExitStack() as stack:
        log_dir = Path(tmp)
        downstream = stack.enter_context(running("downstream", env, log_dir))
        env = {**env, "DOWNSTREAM_URL": downstream.url}
        leaky = stack.enter_context(running("leaky", env, log_dir))
        fixed = stack.enter_context(running("fixed", env, log_dir))
        print(
            f"downstream {downstream.url}  leaky {leaky.url} (pid {leaky.pid})  fixed {fixed.url} (pid {fixed.pid})",
            file=sys.stderr,
        )
        if args.warmup > 0:
            print(f"warm-up {args.warmup:.0f}s at {args.rate:g} req/s each", file=sys.stderr)
            asyncio.run(
                drive_both(leaky, fixed, shape, seconds=args.warmup, prefix="w", show=False)
            )
        time.sleep(1.0)
        before = {s.name: sample(s) for s in (leaky, fixed)}
        print(
            f"measuring {args.duration:.0f}s at {args.rate:g} req/s each, {args.users} users, churn {args.churn:g}/s",
            file=sys.stderr,
        )
        leaky_load, fixed_load = asyncio.run(
            drive_both(leaky, fixed, shape, seconds=args.duration, prefix="m", show=True)
        )
        time.sleep(1.0)
        after = {s.name: sample(s) for s in (leaky, fixed)}
        for svc in (leaky, fixed):
            if svc.process.poll() is not None:
                raise RuntimeError(
                    f"{svc.name} exited during the run (code {svc.process.returncode})"
                )
    result: dict[str, Any] = {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "leaky": compare(before["leaky"], after["leaky"], leaky_load),
        "fixed": compare(before["fixed"], after["fixed"], fixed_load),
    }
    result["reduction"] = reduction(
        result["leaky"]["rss_growth_bytes"], result["fixed"]["rss_growth_bytes"]
    )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.churn < 0 or args.warmup < 0:
        build_parser().error("--churn and --warmup must be >= 0")
    result = run(args)
    print(render_table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
