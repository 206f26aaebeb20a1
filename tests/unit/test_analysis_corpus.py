"""End to end on the leak corpus: each program runs in its own subprocess under the
tracemalloc fallback source + Hunter + retention search (tests/corpus/_harness.py).

Every verdict must be right, the top-1 call path must be the marked allocation site, and
the holder must be named. Cases run 8 s each, five at a time (~25 s wall in total).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
DURATION_S = 8.0
PARALLEL = 5


@dataclass(frozen=True)
class Case:
    name: str
    leak: bool
    holders: tuple[str, ...] = ()  # expected retained_by prefix, per leak site, fastest first
    markers: tuple[str, ...] = ("# LEAK-SITE",)


CASES = (
    Case("global_dict", True, ("global_dict.SESSION_CACHE (dict, +",)),
    Case("lru_unbounded", True, ("lru_unbounded.render_page (lru_cache, +",)),
    Case("listeners", True, ("listeners.BUS.listeners (list, +",)),
    Case("class_attr_cache", True, ("class_attr_cache.Repository._cache (dict, +",)),
    Case("thread_leak", True, ("threads running thread_leak.worker (threads, +",)),
    Case("closure_list", True, ("closure_list.record_audit.<closure>.history (list, +",)),
    Case(
        "two_rates",
        True,
        ("two_rates.UPLOADS (dict, +", "two_rates.ERROR_LOG (list, +"),
        ("# LEAK-SITE\n", "# LEAK-SITE-2"),
    ),
    Case("warm_cache", False),
    Case("startup_alloc", False),
    Case("sawtooth", False),
)


def marker_line(path: Path, marker: str) -> int:
    lines = path.read_text().splitlines(keepends=True)
    hits = [i + 1 for i, line in enumerate(lines) if marker in line or marker in line + "\n"]
    assert len(hits) == 1, f"{marker!r} must mark exactly one line of {path.name}"
    return hits[0]


def run_case(case: Case, out_dir: Path) -> dict[str, Any]:
    out = out_dir / f"{case.name}.json"
    proc = subprocess.run(
        [sys.executable, str(CORPUS / "_harness.py"), str(CORPUS / f"{case.name}.py"),
         "--duration", str(DURATION_S), "--json", str(out)],
        capture_output=True, text=True, timeout=DURATION_S + 60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc: dict[str, Any] = json.loads(out.read_text())
    doc["_stdout"] = proc.stdout
    return doc


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out_dir = tmp_path_factory.mktemp("corpus")
    with ThreadPoolExecutor(PARALLEL) as pool:
        docs = list(pool.map(lambda c: run_case(c, out_dir), CASES))
    return {c.name: d for c, d in zip(CASES, docs)}


def check_schema(doc: dict[str, Any]) -> None:
    assert set(doc) >= {"verdict", "duration_s", "rss_growth_bytes_per_s", "suspects"}
    assert isinstance(doc["duration_s"], float) and isinstance(doc["rss_growth_bytes_per_s"], float)
    for s in doc["suspects"]:
        assert set(s) == {"frames", "growth_bytes_per_s", "retained_bytes", "objects", "retained_by", "trace_ids"}
        assert all(set(f) == {"function", "file", "line"} and isinstance(f["line"], int) for f in s["frames"])
        assert isinstance(s["retained_bytes"], int) and isinstance(s["objects"], int)
        assert all(re.fullmatch(r"[0-9a-f]{32}", t) for t in s["trace_ids"])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_corpus_verdict_site_and_holder(case: Case, results: dict[str, dict[str, Any]]) -> None:
    doc = results[case.name]
    check_schema(doc)
    context = doc["_stdout"]
    assert doc["verdict"] == ("leak" if case.leak else "no-leak"), context
    assert doc["duration_s"] >= DURATION_S * 0.8
    if not case.leak:
        assert doc["suspects"] == [], context
        return
    path = CORPUS / f"{case.name}.py"
    # The suspects that sit on a marked site, in report order, must be the marked sites
    # in the expected order, and the very first suspect must be the fastest marked site.
    expected_lines = [marker_line(path, m) for m in case.markers]
    top = doc["suspects"][0]["frames"][0]
    assert (Path(top["file"]).name, top["line"]) == (path.name, expected_lines[0]), context
    by_line = {s["frames"][0]["line"]: s for s in doc["suspects"] if Path(s["frames"][0]["file"]) == path}
    for line, holder in zip(expected_lines, case.holders):
        s = by_line.get(line)
        assert s is not None, f"no suspect at line {line}\n{context}"
        assert s["retained_by"] is not None and s["retained_by"].startswith(holder), context
        assert s["retained_bytes"] > 0 and s["objects"] > 0
    ranks = [doc["suspects"].index(by_line[line]) for line in expected_lines]
    assert ranks == sorted(ranks), "a faster leak must rank before a slower one"


def test_corpus_growth_rates_are_measured_not_guessed(results: dict[str, dict[str, Any]]) -> None:
    # GIVEN the programs leak ~100 KB/s (two_rates: 120 + 40 KB/s by design)
    for name in ("global_dict", "lru_unbounded", "listeners", "class_attr_cache", "closure_list", "thread_leak"):
        rate = results[name]["suspects"][0]["growth_bytes_per_s"]
        assert 60_000 < rate < 160_000, (name, rate)
    fast, slow = results["two_rates"]["suspects"][0], None
    for s in results["two_rates"]["suspects"][1:]:
        if s["frames"][0]["function"] == "log_error":
            slow = s
    assert slow is not None
    assert fast["growth_bytes_per_s"] > 2 * slow["growth_bytes_per_s"]
