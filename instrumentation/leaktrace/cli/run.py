"""`leaktrace run [--service-name NAME] -- COMMAND [ARGS...]`"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Mapping

from .. import _bootstrap
from ..autoinstrument import ENTRY_POINT_NAME, OTEL_PYTHON_CONFIGURATOR, OTEL_PYTHON_DISTRO

BOOTSTRAP_DIR = os.path.dirname(os.path.abspath(_bootstrap.__file__))


def bootstrap_env(
    environ: Mapping[str, str],
    *,
    service_name: str | None = None,
    extra: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> dict[str, str]:
    """The environment that makes a Python child start leaktrace before its own code.

    The same as `opentelemetry-instrument` sets up, with leaktrace as distro and configurator:
    the bootstrap's sitecustomize first on PYTHONPATH, then the working directory (a program
    run by its own executable, such as Django's manage.py, imports its settings from there
    before its script directory is on sys.path).
    """
    env = dict(environ)
    here = os.path.abspath(cwd if cwd is not None else os.getcwd())
    rest = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    if here not in rest:
        rest.insert(0, here)
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *rest])
    env.pop("LEAKTRACE_BOOTSTRAP_DONE", None)
    # `leaktrace run` is leaktrace's distro whatever else is installed (opentelemetry-distro too).
    env[OTEL_PYTHON_DISTRO] = ENTRY_POINT_NAME
    env[OTEL_PYTHON_CONFIGURATOR] = ENTRY_POINT_NAME
    if service_name:
        env["OTEL_SERVICE_NAME"] = service_name
    env.update(extra or {})
    return env


def command_from(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    command = list(args.command_args)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        parser.error("a command to run is required: leaktrace run -- python app.py")
    return command


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    command = command_from(args, parser)
    executable = shutil.which(command[0])
    if executable is None:
        print(f"leaktrace: cannot run {command[0]!r}: command not found", file=sys.stderr)
        return 1
    env = bootstrap_env(os.environ, service_name=args.service_name)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        # exec, not spawn: the program gets our pid, its signals and its exit status directly.
        os.execve(executable, command, env)
    except OSError as exc:
        print(f"leaktrace: cannot run {command[0]!r}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0  # not reached


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "run",
        help="run a Python program with leaktrace initialised before its code",
        description="Run COMMAND with leaktrace started in its Python process before its code "
        "(global tracer and logger providers set) and the installed OpenTelemetry instrumentors "
        "loaded: `opentelemetry-instrument` with leaktrace as distro and configurator. "
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS leaves instrumentors out. Exit status and "
        "signals pass through.",
    )
    p.add_argument(
        "--service-name", help="service.name (default: OTEL_SERVICE_NAME or the program name)"
    )
    p.add_argument("command_args", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS...]")
    p.set_defaults(func=_run)
