"""An unmodified program that asks its multiprocessing pool workers what SIGTERM does there.

Prints one JSON line: the SIGTERM handler's type name in this process and in each worker of a
pool of 2 started with --method (`Handlers` for the default action).
"""

import argparse
import json
import multiprocessing
import os
import signal


def disposition() -> tuple[int, str]:
    handler = signal.getsignal(signal.SIGTERM)
    return os.getpid(), handler.name if isinstance(handler, signal.Handlers) else type(
        handler
    ).__name__


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", choices=("fork", "spawn", "forkserver"), required=True)
    args = parser.parse_args()
    ctx = multiprocessing.get_context(args.method)
    with ctx.Pool(2) as pool:
        workers = dict(pool.starmap(disposition, [()] * 8))
    print(
        json.dumps({"parent": disposition()[1], "workers": sorted(set(workers.values()))}),
        flush=True,
    )


if __name__ == "__main__":
    main()
