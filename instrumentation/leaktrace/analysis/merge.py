"""One hunt report for a process tree: the reports of a prefork server's master and workers merged.

`leaktrace hunt -- gunicorn -w 2 app:app` hunts in every process: the master, each worker (forked
or spawned), a multiprocessing pool's children. Each leaves its own report, keyed by pid. The
same leak in several workers (same code, so the same call path) becomes one suspect whose
figures add up over the workers (the service leaks that much), with each worker's own figures in
`processes`. The verdict is `leak` when any process leaks: an idle supervisor's empty report
never outvotes its workers.

The merged document keeps the single-process schema (verdict, duration_s, rss_growth_bytes_per_s,
suspects, snapshots, notes, timeline) and adds a top-level `processes` list; a tree of one process
is its own report unchanged, plus that list. Pure functions over JSON documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

LEAK = "leak"
NO_LEAK = "no-leak"

#: Upper bound on the trace ids of one merged suspect (the analyzer keeps 256 per path).
MAX_TRACE_IDS = 256

Doc = Mapping[str, Any]
FrameKey = tuple[tuple[str, str, int], ...]


def suspect_key(suspect: Doc) -> FrameKey:
    """What makes two workers' suspects the same leak: the frames the analyzer grouped the
    samples by (the first user frames), else the allocation site."""
    frames = suspect.get("grouped_by") or (suspect.get("frames") or [])[:1]
    return tuple(
        (str(f.get("function", "?")), str(f.get("file", "?")), int(f.get("line", 0)))
        for f in frames
    )


def _growth(doc: Doc) -> float:
    return float(doc.get("growth_bytes_per_s", 0.0))


def interleave(lists: Iterable[Sequence[str]], limit: int = MAX_TRACE_IDS) -> list[str]:
    """Round-robin over lists that are each most-likely-first, without repeats, at most `limit`."""
    pending = [list(items) for items in lists]
    seen: set[str] = set()
    out: list[str] = []
    depth = 0
    while len(out) < limit and any(depth < len(items) for items in pending):
        for items in pending:
            if depth < len(items) and items[depth] not in seen and len(out) < limit:
                seen.add(items[depth])
                out.append(items[depth])
        depth += 1
    return out


def merge_suspects(members: Sequence[tuple[int, Doc]]) -> dict[str, Any]:
    """One suspect from the same leak seen in several processes ((pid, suspect) pairs)."""
    ranked = sorted(members, key=lambda m: _growth(m[1]), reverse=True)
    lead = dict(ranked[0][1])
    holder_of = next((s for _, s in ranked if s.get("retained_by")), lead)
    per_process = [
        {
            "pid": pid,
            "growth_bytes_per_s": round(_growth(s), 3),
            "retained_bytes": int(s.get("retained_bytes", 0)),
            "objects": int(s.get("objects", 0)),
            "retained_by": s.get("retained_by"),
            "trace_ids": list(s.get("trace_ids") or []),
        }
        for pid, s in ranked
    ]
    lead.update(
        growth_bytes_per_s=round(sum(_growth(s) for _, s in ranked), 3),
        retained_bytes=sum(int(s.get("retained_bytes", 0)) for _, s in ranked),
        objects=sum(int(s.get("objects", 0)) for _, s in ranked),
        retained_by=holder_of.get("retained_by"),
        holder=holder_of.get("holder"),
        trace_ids=interleave(s.get("trace_ids") or [] for _, s in ranked),
        processes=per_process,
    )
    if any("lines" in s for _, s in ranked):
        lead["lines"] = sorted({int(n) for _, s in ranked for n in s.get("lines") or ()})
    if any("endpoints" in s for _, s in ranked):
        lead["endpoints"] = merge_endpoints(s.get("endpoints") or [] for _, s in ranked)
    if "p_value" in lead:
        lead["p_value"] = min(float(s.get("p_value", 1.0)) for _, s in ranked)
    return lead


def merge_endpoints(lists: Iterable[Iterable[Doc]]) -> list[dict[str, Any]]:
    """Bytes per endpoint over the workers: the same route's figures added up."""
    totals: dict[str, dict[str, Any]] = {}
    for entries in lists:
        for e in entries:
            name = str(e.get("name", ""))
            into = totals.setdefault(name, {**e, "retained_bytes": 0.0, "requests": 0})
            into["retained_bytes"] += float(e.get("retained_bytes", 0.0))
            into["requests"] += int(e.get("requests", 0))
    for e in totals.values():
        e["retained_bytes"] = int(e["retained_bytes"])
        if "bytes_per_request" in e:
            e["bytes_per_request"] = (
                round(e["retained_bytes"] / e["requests"], 1) if e["requests"] else 0.0
            )
    return sorted(totals.values(), key=lambda e: e["retained_bytes"], reverse=True)


def process_summary(pid: int, doc: Doc) -> dict[str, Any]:
    raw = doc.get("process")
    process: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    suspects = doc.get("suspects") or []
    top = suspects[0] if suspects else None
    return {
        "pid": pid,
        "service_instance_id": process.get("service_instance_id"),
        "verdict": doc.get("verdict", NO_LEAK),
        "duration_s": float(doc.get("duration_s", 0.0)),
        "rss_growth_bytes_per_s": float(doc.get("rss_growth_bytes_per_s", 0.0)),
        "snapshots": int(doc.get("snapshots", 0)),
        "suspects": len(suspects),
        "top_call_path": (top.get("call_path") or _site(top)) if top else None,
    }


def _site(suspect: Doc) -> str:
    frames = suspect.get("frames") or [{}]
    return f"{frames[0].get('function', '?')}:{frames[0].get('line', '?')}"


def primary_pid(reports: Mapping[int, Doc]) -> int:
    """The process whose timeline and heap profile stand for the tree: the one with the fastest
    growing suspect, else the one that ran longest (lowest pid on ties: the oldest)."""

    def rank(pid: int) -> tuple[float, float, int]:
        doc = reports[pid]
        top = max((_growth(s) for s in doc.get("suspects") or []), default=float("-inf"))
        return (top, float(doc.get("duration_s", 0.0)), -pid)

    return max(reports, key=rank)


def merge_reports(reports: Mapping[int, Doc]) -> dict[str, Any]:
    """The hunt document of a process tree from each process's document, keyed by pid."""
    if not reports:
        raise ValueError("no process left a hunt report")
    pids = sorted(reports)
    processes = [process_summary(pid, reports[pid]) for pid in pids]
    if len(pids) == 1:
        alone = {k: v for k, v in reports[pids[0]].items() if k != "process"}
        alone["processes"] = processes
        return alone
    groups: dict[FrameKey, list[tuple[int, Doc]]] = {}
    for pid in pids:
        for suspect in reports[pid].get("suspects") or []:
            groups.setdefault(suspect_key(suspect), []).append((pid, suspect))
    suspects = sorted((merge_suspects(m) for m in groups.values()), key=_growth, reverse=True)
    primary = reports[primary_pid(reports)]
    notes: list[str] = []
    for pid in pids:
        for note in reports[pid].get("notes") or []:
            if note not in notes:
                notes.append(note)
    notes.append(
        f"merged from {len(pids)} processes (pids {', '.join(map(str, pids))}); the timeline is "
        f"pid {primary_pid(reports)}'s"
    )
    doc: dict[str, Any] = {
        "verdict": LEAK if suspects else NO_LEAK,
        "duration_s": max(float(reports[p].get("duration_s", 0.0)) for p in pids),
        "rss_growth_bytes_per_s": round(
            sum(float(reports[p].get("rss_growth_bytes_per_s", 0.0)) for p in pids), 3
        ),
        "suspects": suspects,
        "snapshots": sum(int(reports[p].get("snapshots", 0)) for p in pids),
        "notes": notes,
    }
    if any(
        "telemetry_bytes" in reports[p] for p in pids
    ):  # telemetry's own memory, every process's
        doc["telemetry_bytes"] = sum(float(reports[p].get("telemetry_bytes", 0.0)) for p in pids)
    if "timeline" in primary:
        doc["timeline"] = primary["timeline"]
    doc["processes"] = processes
    return doc
