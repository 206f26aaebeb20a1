"""`leaktrace bootstrap [-a requirements|install]`: the instrumentations for the installed libraries.

OpenTelemetry's own table (opentelemetry-instrumentation's bootstrap_gen, what
`opentelemetry-bootstrap` reads) maps installed libraries to instrumentation packages of the
matching release; this prints that list, or installs it with one pip call.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Sequence

REQUIREMENTS = "requirements"
INSTALL = "install"


def wanted_instrumentations() -> list[str]:
    """Requirement strings for the installed libraries (and OpenTelemetry's defaults)."""
    from opentelemetry.instrumentation.bootstrap import _find_installed_libraries
    from opentelemetry.instrumentation.bootstrap_gen import default_instrumentations, libraries

    seen: dict[str, None] = {}
    for requirement in _find_installed_libraries(default_instrumentations, libraries):  # type: ignore[no-untyped-call]
        seen.setdefault(str(requirement), None)
    return list(seen)


def install(
    requirements: Sequence[str],
    *,
    run: Callable[[list[str]], int] = subprocess.call,
    python: str = sys.executable,
) -> int:
    """One `pip install` for all of them: one resolver pass, so they agree with each other."""
    if not requirements:
        return 0
    return run(
        [python, "-m", "pip", "install", "--upgrade-strategy", "only-if-needed", *requirements]
    )


def _bootstrap(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        requirements = wanted_instrumentations()
    except ImportError as exc:
        print(
            f"leaktrace bootstrap: opentelemetry-instrumentation is not usable here ({exc})",
            file=sys.stderr,
        )
        return 1
    if args.action == REQUIREMENTS:
        print("\n".join(requirements))
        return 0
    print(
        f"leaktrace bootstrap: installing {len(requirements)} instrumentation packages",
        file=sys.stderr,
    )
    status = install(requirements)
    if status != 0:
        print(f"leaktrace bootstrap: pip exited with status {status}", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "bootstrap",
        help="list or install the OpenTelemetry instrumentations for the installed libraries",
        description="Detect the installed libraries (Flask, Django, FastAPI, requests, httpx, "
        "SQLAlchemy, psycopg, redis, Celery, ...) and print the matching OpenTelemetry "
        "instrumentation packages, or install them with one pip call. The same table as "
        "`opentelemetry-bootstrap`; `leaktrace run` then loads them.",
    )
    p.add_argument(
        "-a",
        "--action",
        choices=(REQUIREMENTS, INSTALL),
        default=REQUIREMENTS,
        help="requirements: print them, one per line (default); install: pip install them",
    )
    p.set_defaults(func=_bootstrap)
