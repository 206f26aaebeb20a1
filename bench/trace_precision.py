"""Trace attribution under object reuse: precision of the reported trace ids, with and without
the freelist rule (issue 16).

    python bench/trace_precision.py [--trials 5] [--duration 12] [--quick]
                                    --json bench/results/trace_precision.json

Cases (tests/corpus, run by tests/corpus/_harness.py with the native sampler at 16 KiB, spans
exported to a port that refuses):
- listener_half: every request builds the same listener structure of small dicts, lists, tuples
  and a topic string; even requests keep it, odd ones drop it;
- listener_half_plain (the same structure built of a slotted class and bytes, which CPython
  keeps no freelist for): the control that tells freelist reuse from the analyzer's logic;
- partial_leak: every request holds a 30 KB payload for 50 ms..1.3 s, 1 in 3 keeps it.
Modes: `trusted` counts every sample as evidence of its trace id (the analyzer before issue 16),
`freelist-rule` ignores samples whose blocks may all be freelist-served (analysis/freelists.py).
Precision = reported trace ids that kept memory / reported trace ids.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

CORPUS = C.ROOT / "tests" / "corpus"
CASES = ("listener_half", "listener_half_plain", "partial_leak")
MODES = ("trusted", "freelist-rule")

# listener_half with its structure made of objects no freelist serves (slotted instances and
# bytes): written next to the corpus file at run time, so it imports _pace-free as the original.
PLAIN_SUBST = (
    '{"id": i, "trace": trace_id, "topics": [{"topic": f"orders.region-{j % 7}.customer-{i}.topic-{j}.events", '
    '"key": (i, j)} for j in range(n)]}',
    'Obj(i, trace_id, [Obj(j, f"orders.region-{j % 7}.customer-{i}.topic-{j}.events", bytes(160)) for j in range(n)])',
)
PLAIN_CLASS = """class Obj:
    __slots__ = ("a", "b", "c")

    def __init__(self, a: object, b: object, c: object) -> None:
        self.a, self.b, self.c = a, b, c


class Bus:"""


def plain_case(work: Path) -> Path:
    src = (CORPUS / "listener_half.py").read_text()
    if PLAIN_SUBST[0] not in src:
        raise SystemExit("listener_half.py changed: update PLAIN_SUBST")
    out = work / "listener_half_plain.py"
    out.write_text(
        src.replace(PLAIN_SUBST[0], PLAIN_SUBST[1]).replace("class Bus:", PLAIN_CLASS, 1)
    )
    return out


def run(case: Path, mode: str, duration: float, work: Path, trial: int) -> dict[str, Any]:
    out = work / f"{case.stem}-{mode}-{trial}.json"
    truth = work / f"{case.stem}-{mode}-{trial}.truth.json"
    port = C.dead_port()
    cmd = [
        sys.executable,
        str(CORPUS / "_harness.py"),
        str(case),
        "--duration",
        str(duration),
        "--json",
        str(out),
        "--source",
        "native",
        "--otlp-endpoint",
        f"http://127.0.0.1:{port}",
        *(["--trust-freelist-samples"] if mode == "trusted" else []),
        "--",
        "--truth",
        str(truth),
    ]
    env = C.child_env()
    env["PYTHONPATH"] = os.pathsep.join([str(CORPUS), env["PYTHONPATH"]])
    proc = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration * 3 + 120, check=False
    )
    if proc.returncode != 0:
        return {"case": case.stem, "mode": mode, "trial": trial, "error": proc.stderr[-1500:]}
    doc = json.loads(out.read_text())
    kept = set(json.loads(truth.read_text())["leaked"])
    reported = {t for s in doc["suspects"] for t in s["trace_ids"]}
    return {
        "case": case.stem,
        "mode": mode,
        "trial": trial,
        "verdict": doc["verdict"],
        "reported": len(reported),
        "correct": len(reported & kept),
        "precision": len(reported & kept) / len(reported) if reported else None,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--duration", type=float, default=12.0)
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="1 trial")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    trials = 1 if a.quick else a.trials
    machine = C.machine_info()
    with tempfile.TemporaryDirectory(prefix="leaktrace-precision-", dir=CORPUS) as tmp:
        work = Path(tmp)
        paths = {
            "listener_half": CORPUS / "listener_half.py",
            "listener_half_plain": plain_case(work),
            "partial_leak": CORPUS / "partial_leak.py",
        }
        jobs = [(paths[c], m, t) for t in range(trials) for c in CASES for m in MODES]
        with ThreadPoolExecutor(a.parallel) as pool:
            rows = list(pool.map(lambda j: run(j[0], j[1], a.duration, work, j[2]), jobs))
    summary: dict[str, dict[str, Any]] = {}
    table_rows = []
    for c in CASES:
        for m in MODES:
            rs = [r for r in rows if r["case"] == c and r["mode"] == m and "error" not in r]
            precisions = [r["precision"] for r in rs]
            summary[f"{c}/{m}"] = {
                "median": C.median(precisions),
                **C.spread(precisions),
                "reported_median": C.median([r["reported"] for r in rs]),
            }
            table_rows.append(
                [
                    c,
                    m,
                    len(rs),
                    C.median(precisions),
                    summary[f"{c}/{m}"]["min"],
                    C.median([r["reported"] for r in rs]),
                ]
            )
    print(
        C.table(
            [
                "case",
                "mode",
                "trials",
                "precision (median)",
                "precision (worst)",
                "ids reported (median)",
            ],
            table_rows,
        )
    )
    goals = [
        C.Goal(
            f"{c}: trace precision >= 0.9 in every trial (worst)", f"{c}/freelist-rule", 0.9, ">="
        ).judge(summary[f"{c}/freelist-rule"]["min"])
        for c in CASES
    ]
    for g in goals:
        print(f"goal {g['status']}: {g['name']}: {g['value']} {g['op']} {g['limit']}")
    doc = C.result_doc(
        "trace_precision",
        argv=list(argv if argv is not None else sys.argv[1:]),
        quick=a.quick,
        machine=machine,
        trials=trials,
        duration_s=a.duration,
        rows=rows,
        summary=summary,
        goals=goals,
    )
    if a.json is not None:
        C.write_json(a.json, doc)
        print(f"wrote {a.json}")
    return 0 if all(g["passed"] for g in goals) else 1


if __name__ == "__main__":
    sys.exit(main())
