# Loaded by Python at startup because `leaktrace run` puts this folder first on PYTHONPATH.
import importlib.machinery
import importlib.util
import os
import sys

# multiprocessing's resource tracker runs no user code: no telemetry of its own there. (Its
# forkserver process does get one: the workers it forks carry it on, as a gunicorn master's do.)
_HELPERS = ("from multiprocessing.resource_tracker import",)


def _leaktrace_bootstrap() -> None:
    if os.environ.get("LEAKTRACE_BOOTSTRAP_DONE") == str(os.getpid()):
        return
    argv = getattr(sys, "orig_argv", [])
    if "-c" in argv[:-1] and argv[argv.index("-c") + 1].startswith(_HELPERS):
        return
    from leaktrace._bootstrap.autoinit import initialize

    initialize()


def _chain_next_sitecustomize() -> None:
    # The program's environment may have its own sitecustomize further down the path.
    here = os.path.dirname(os.path.abspath(__file__))
    paths = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", paths)
    if spec is not None and spec.loader is not None and spec.origin != __file__:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


try:
    _leaktrace_bootstrap()
finally:
    _chain_next_sitecustomize()
