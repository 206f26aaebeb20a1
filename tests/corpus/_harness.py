"""Run one corpus program under the tracemalloc fallback source and a Hunter, in-process.

    python tests/corpus/_harness.py CASE.py --duration 8 --json OUT.json [--interval 0.5]

This is what `leaktrace hunt` will do through the `leaktrace run` bootstrap, minus the
bootstrap: start the snapshot source, start the Hunter, run the program as __main__,
stop the Hunter, write its final report (plus the holder evidence, under "_debug").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import runpy
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("case")
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--json", required=True)
    p.add_argument("--interval", type=float, default=0.5)
    a = p.parse_args(argv)
    case = os.path.abspath(a.case)

    from leaktrace.analysis import Hunter, HunterConfig, TracemallocSource

    source = TracemallocSource()
    source.start()
    hunter = Hunter(
        source,
        object_site=source.object_site,
        clock=time.time,
        logger=logging.getLogger("corpus.hunter"),
        config=HunterConfig(interval_s=a.interval),
    )
    hunter.start()
    saved_argv = sys.argv
    sys.argv = [case, "--duration", str(a.duration)]
    try:
        runpy.run_path(case, run_name="__main__")
    finally:
        sys.argv = saved_argv
        report = hunter.stop()
        source.stop()
    doc = report.to_json_dict()
    doc["_debug"] = {
        "errors": hunter.errors,
        "snapshots": report.snapshots,
        "holders": [
            None if s.holder is None else {
                "name": s.holder.name,
                "r_squared": s.holder.r_squared,
                "bytes_per_entry": s.holder.bytes_per_entry,
                "confirmed": s.holder.confirmed,
            }
            for s in report.suspects
        ],
    }
    with open(a.json, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
    report.render(sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
