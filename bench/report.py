"""Rewrite the README's benchmark section from bench/results/*.json; nothing in it is typed by hand.

    python bench/report.py [--results bench/results] [--readme README.md] [--stdout]

Only the text between the lines `<!-- bench:begin -->` and `<!-- bench:end -->` is replaced;
every other byte of the README stays as it was. Without those markers (or with --stdout) the
section is printed to stdout instead and the README is not touched.

It reads the result files of bench/overhead.py, bench/hunt_speed.py and bench/footprint.py;
a missing one is listed as "not run". A result made with --quick is marked as such: its
numbers check the plumbing, not the product.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"
BENCHMARKS = ("overhead", "hunt_speed", "footprint")
#: bench/heap_overhead.py and bench/heap_accuracy.py write flat documents (no "table"/"date").
HEAP_BENCHMARKS = ("heap_overhead", "heap_accuracy", "callgrind_alloc")
HEAP_FIELDS = {
    "heap_overhead": frozenset(
        {
            "iterations",
            "rounds",
            "sample_bytes",
            "ratio_leaktrace_vs_off",
            "ratio_pyroscope_mem_vs_off",
        }
    ),
    "heap_accuracy": frozenset({"summary", "mb", "trials", "sample_bytes"}),
    "callgrind_alloc": frozenset({"versions", "iterations", "sample_bytes", "command"}),
}
CALLGRIND_NAMES = {
    "bare": "bare",
    "leaktrace": "leaktrace heap sampler",
    "pyroscope_mem": "pyroscope-io memory",
    "ddtrace_memalloc": "ddtrace memalloc heap",
}
TITLES = {"overhead": "Overhead", "hunt_speed": "Hunt speed", "footprint": "Footprint"}


class MarkersMissing(ValueError):
    pass


def is_variant(doc: Mapping[str, Any]) -> bool:
    """A run of a non-default configuration (footprint --env or another soak length than the
    issue's 10 minutes, hunt_speed with dead exporters or another sample interval): kept in
    bench/results and cited in docs, never the README's figure."""
    cfg = doc.get("config") or {}
    longer_soak = (
        doc.get("benchmark") == "footprint"
        and not doc.get("quick")
        and cfg.get("duration_s", 600.0) != 600.0
    )
    return (
        bool(cfg.get("extra_env"))
        or longer_soak
        or cfg.get("exporters", "live") != "live"
        or (cfg.get("sample_bytes", "leaktrace default") != "leaktrace default")
    )


def load_results(results_dir: Path) -> dict[str, dict[str, Any]]:
    """The newest result document of each benchmark, by its `benchmark` key (not by file name),
    variants left out."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(results_dir.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("benchmark") in HEAP_BENCHMARKS:
            if HEAP_FIELDS[doc["benchmark"]] <= set(doc):  # else not written by those commands
                found[doc["benchmark"]] = doc
            continue
        if (
            not isinstance(doc, dict)
            or doc.get("benchmark") not in BENCHMARKS
            or "table" not in doc
        ):
            continue
        if is_variant(doc):
            continue
        name = doc["benchmark"]
        if name not in found or str(doc.get("date", "")) > str(found[name].get("date", "")):
            found[name] = doc
    return found


def _origin(doc: Mapping[str, Any]) -> str:
    m = doc.get("machine", {})
    pkgs = m.get("packages", {})
    cores = m.get("cpus_logical")
    parts = [
        f"{doc.get('date', '?')}",
        f"{cores} CPUs" if cores else "",
        f"Python {m.get('python', '?')}",
        f"leaktrace {pkgs.get('leaktrace') or '?'}",
        f"commit {str(m.get('git_commit') or '?')[:10]}",
    ]
    line = f"_`{doc.get('command', '')}` — " + ", ".join(p for p in parts if p) + "_"
    if doc.get("quick"):
        line += "\n\n**Quick run (tiny counts): these numbers check the plumbing, not leaktrace.**"
    if m.get("code_changed_during_run"):
        line += (
            "\n\n**leaktrace's code changed while this ran: its children measured different code.**"
        )
    return line


def leaktrace_components(doc: Mapping[str, Any]) -> str | None:
    """What `leaktrace run` actually started in the overhead children (their own report)."""
    for res in doc.get("rounds", {}).values():
        for workload in ("alloc_heavy", "request_loop"):
            lt = res.get(workload, {}).get("signals", {}).get("leaktrace", {}).get("leaktrace")
            if lt:
                on = [
                    name
                    for name, key in (
                        ("OTLP traces", "traces"),
                        ("OTLP logs", "logs"),
                        ("/metrics", "metrics_served"),
                        ("pyroscope-io CPU", "cpu_profiler"),
                        ("pyroscope-io memory", "pyroscope_memory"),
                        ("hunter", "hunter"),
                    )
                    if lt.get(key)
                ]
                if lt.get("heap_sampler"):
                    on.append(
                        f"span-linked heap sampler (mean interval {lt.get('heap_sample_bytes', 0) // 1024} KiB)"
                    )
                return ", ".join(on)
    return None


def _goal_value(g: Mapping[str, Any]) -> str:
    v = g.get("value")
    if v is None:
        return "-"
    if "bytes" in str(g.get("metric", "")):
        return f"{v / 1e6:.2f} MB"
    return C.fmt(v)


def _goal_limit(g: Mapping[str, Any]) -> str:
    if "bytes" in str(g.get("metric", "")):
        return f"{g['op']} {g['limit'] / 1e6:g} MB"
    return f"{g['op']} {g['limit']:g}"


def goals_table(docs: Mapping[str, Mapping[str, Any]]) -> str:
    rows = []
    for name in BENCHMARKS:
        for g in docs.get(name, {}).get("goals", []):
            where = ", ".join(
                x
                for x in (
                    f"{g['round']} exporters" if g.get("round") else "",
                    f"{g['basis']} basis" if g.get("basis") else "",
                )
                if x
            )
            rows.append(
                [
                    g["name"] + (f" ({where})" if where else ""),
                    _goal_value(g),
                    _goal_limit(g),
                    g["status"].upper(),
                ]
            )
    if not rows:
        return "No goal has been measured yet."
    return C.table(["goal", "measured", "target", "status"], rows)


def render(docs: Mapping[str, Mapping[str, Any]]) -> str:
    out = [
        (
            "_Generated by `python bench/report.py` from `bench/results/*.json`; do not edit by hand. "
            "How each figure is measured: docs/benchmarks.md._"
        ),
        "",
        "### Goals",
        "",
        goals_table(docs),
    ]
    for name in BENCHMARKS:
        out += ["", f"### {TITLES[name]}", ""]
        doc = docs.get(name)
        if doc is None:
            out.append(f"Not run yet: `python bench/{name}.py --json bench/results/{name}.json`.")
            continue
        out.append(_origin(doc))
        out.append("")
        tab = doc["table"]
        out.append(C.table(tab["headers"], tab["rows"]))
        if name == "overhead":
            runs = doc.get("config", {}).get("runs")
            basis = doc.get("config", {}).get("judged_on", "wall")
            judged = (
                "Goals are judged as issue 8 states them: the service on throughput, the loops on "
                "process CPU; the service's CPU per request is shown beside it"
                if basis == "stated"
                else f"Goals are judged on the {basis} figures"
            )
            out += [
                "",
                (
                    f"Seconds for a fixed amount of work (process CPU, every telemetry thread included; "
                    f"and wall). Ratios are the median over {runs} interleaved runs of the ratio within a "
                    f"run; > 1 means leaktrace costs more. {judged}. "
                    "`dead`: exporters point at a closed port; `live`: at capture endpoints."
                ),
            ]
            comps = leaktrace_components(doc)
            if comps:
                out += ["", f"leaktrace ran with: {comps}."]
            abl = doc.get("ablation_table")
            if abl:
                out += [
                    "",
                    "What costs what (leaktrace with one part off, live exporters, process CPU):",
                    "",
                    C.table(abl["headers"], abl["rows"]),
                ]
        if name == "hunt_speed":
            fa = doc.get("false_alarms", {})
            cfg = doc.get("config", {})
            sites = ", ".join(f"{k} ({v}x)" for k, v in (fa.get("sites") or {}).items())
            out += [
                "",
                f"Exporters: {cfg.get('exporters', 'dead')}. False alarms on the controls: "
                f"{fa.get('false_alarm_reports')}/{fa.get('reports')} hunter reports named a suspect "
                f"({C.fmt(fa.get('false_alarms_per_hour'))} per hour over {C.fmt(fa.get('control_seconds'))} s)"
                + (f"; sites flagged: {sites}." if sites else "."),
            ]
            if doc.get("note"):
                out += ["", f"Note: {doc['note']}"]
    out += ["", "### Heap sampler", "", *heap_section(docs)]
    return "\n".join(out) + "\n"


def heap_section(docs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    over, acc = docs.get("heap_overhead"), docs.get("heap_accuracy")
    lines: list[str] = []
    if over is None:
        lines.append("Not run yet: `python bench/heap_overhead.py`.")
    elif isinstance(over.get("versions"), dict):
        lines += [
            (
                f"_`{over.get('command', 'python bench/heap_overhead.py')}`_: allocation-heavy loop "
                f"({over['iterations']:,} iterations, median of {over['rounds']} interleaved rounds, "
                f"{over['sample_bytes'] // 1024} KiB mean interval), each CPython against itself in the same run:"
            ),
            "",
            C.table(
                [
                    "CPython",
                    "heap sampling on/off",
                    "pyroscope-io's memory profiler/off",
                    "goal on/off <= 1.10",
                ],
                [
                    [
                        version,
                        C.fmt(v.get("ratio_leaktrace_vs_off")),
                        C.fmt(v.get("ratio_pyroscope_mem_vs_off")),
                        str(v.get("goal_status", "-")).upper(),
                    ]
                    for version, v in over["versions"].items()
                ],
            ),
        ]
    else:
        lines.append(
            f"_`python bench/heap_overhead.py`_: allocation-heavy loop ({over['iterations']:,} iterations, median of "
            f"{over['rounds']} interleaved rounds, {over['sample_bytes'] // 1024} KiB mean interval): heap sampling "
            f"on/off {C.fmt(over['ratio_leaktrace_vs_off'])}; pyroscope-io's memory profiler/off "
            f"{C.fmt(over['ratio_pyroscope_mem_vs_off'])} (goal: on/off <= 1.10)."
        )
    lines += ["", *callgrind_section(docs.get("callgrind_alloc"))]
    if acc is None:
        lines += ["", "Not run yet: `python bench/heap_accuracy.py`."]
    else:
        rows = [
            [k, C.fmt(v["mean_rel_error"]), C.fmt(v["stdev_rel_error"]), C.fmt(v["within_10pct"])]
            for k, v in acc["summary"].items()
        ]
        lines += [
            "",
            (
                f"_`python bench/heap_accuracy.py`_: {acc['mb']:g} MB retained by known functions, "
                f"{acc['trials']} trials at {acc['sample_bytes'] // 1024} KiB; relative error of the "
                "inuse_space estimate (goal: within ±10 %):"
            ),
            "",
            C.table(["pattern", "mean error", "stdev", "share of trials within ±10 %"], rows),
        ]
    return lines


def _giga(value: Any) -> str:
    return "-" if value is None else f"{value / 1e9:.3f} G"


def callgrind_section(doc: Mapping[str, Any] | None) -> list[str]:
    """bench/callgrind_alloc.py: profilers side by side in instructions, per CPython."""
    if doc is None:
        return [
            "Not run yet: `python bench/callgrind_alloc.py` (needs valgrind and the `[bench]` extra)."
        ]
    rows = []
    for version, v in doc["versions"].items():
        for config, r in v.get("configs", {}).items():
            rows.append(
                [
                    version,
                    CALLGRIND_NAMES.get(config, config),
                    _giga(r.get("loop_instructions")),
                    C.fmt(r.get("loop_vs_bare")),
                    _giga(r.get("startup_instructions")),
                    C.fmt(r.get("startup_vs_bare")),
                ]
            )
        for config, why in (v.get("skipped") or {}).items():
            rows.append([version, CALLGRIND_NAMES.get(config, config), "skipped", why, "-", "-"])
    goals = ", ".join(
        f"{version} {str(v.get('goal_status', '-')).upper()}"
        for version, v in doc["versions"].items()
    )
    return [
        (
            f"_`{doc['command']}`_ ({str(doc.get('date', '?'))[:10]}, valgrind's callgrind): the same loop of tiny "
            f"allocations (a dict of small lists, strs, dicts and tuples), {doc['iterations']:,} iterations, each "
            f"profiler at a {doc['sample_bytes'] // 1024} KiB mean sample interval. Loop = instructions of the "
            "main thread at N iterations minus at 0; start-up = all threads' instructions at 0 (interpreter, "
            "imports, profiler start and exit). leaktrace ran through `leaktrace.init()` with traces, logs, "
            "/metrics and CPU profiling off."
        ),
        "",
        C.table(
            ["CPython", "configuration", "loop", "loop / bare", "start-up", "start-up / bare"], rows
        ),
        "",
        f"Goal, leaktrace's loop costs the least of the three profilers: {goals}.",
    ]


def splice(readme: str, section: str) -> str:
    """README text with everything between the markers replaced by `section`; nothing else changes."""
    start = readme.find(BEGIN)
    end = readme.find(END)
    if start < 0 or end < 0 or end < start:
        raise MarkersMissing(f"README has no {BEGIN} ... {END} pair")
    if readme.find(BEGIN, start + 1) >= 0 or readme.find(END, end + 1) >= 0:
        raise MarkersMissing("README has more than one bench marker pair")
    head = readme[: start + len(BEGIN)]
    tail = readme[end:]
    return head + "\n" + section + tail


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python bench/report.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=C.RESULTS)
    p.add_argument("--readme", type=Path, default=C.ROOT / "README.md")
    p.add_argument(
        "--stdout", action="store_true", help="print the section, leave the README alone"
    )
    a = p.parse_args(argv)
    section = render(load_results(a.results))
    if a.stdout:
        sys.stdout.write(section)
        return 0
    try:
        text = a.readme.read_text(encoding="utf-8")
        new = splice(text, section)
    except (OSError, MarkersMissing) as exc:
        sys.stdout.write(section)
        print(
            f"\nreport: README not updated ({exc}); the section is printed above.", file=sys.stderr
        )
        return 0
    if new != text:
        tmp = a.readme.with_suffix(".md.tmp")
        tmp.write_text(new, encoding="utf-8")
        os.replace(tmp, a.readme)
        print(f"report: rewrote the benchmark section of {a.readme}")
    else:
        print(f"report: {a.readme} already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
