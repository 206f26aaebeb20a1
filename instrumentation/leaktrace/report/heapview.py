"""The live heap by call path, as the HTML report draws it: a bounded flame-graph tree with the
suspects' paths marked, and each suspect's bytes per endpoint. Pure functions over decoded
pprof samples (leaf frame first, as pprof stores them).

A suspect's *site* in a stack is where its grouping key (the first user frames, see
`analysis.callpath`) occurs: the key's first frame, with the rest of the key found in order
among its callers. Everything allocated under a site node belongs to that suspect.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from leaktrace.analysis.model import Suspect
from leaktrace.profiling.pprof import DecodedProfile
from leaktrace.profiling.samples import Frame

#: pprof sample label naming the endpoint (local root span) that allocated the memory.
ENDPOINT_LABEL = "span_name"
TRACE_LABEL = "trace_id"
ROOT_ID = "root"


@dataclass(frozen=True, slots=True)
class HeapSample:
    frames: tuple[Frame, ...]  # leaf first
    inuse_bytes: float
    labels: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class FlameGraph:
    """Parallel tuples, root first (a parent always precedes its children): what an icicle
    chart takes. `suspect[i]` is the 1-based rank of the suspect node i belongs to (its site or
    below), or 0; `on_path[i]` the rank of the best suspect whose site is below node i."""

    ids: tuple[str, ...]
    labels: tuple[str, ...]
    parents: tuple[str, ...]
    values: tuple[float, ...]  # live bytes under the node, children included
    details: tuple[str, ...]  # the frame in full, for hover text
    suspect: tuple[int, ...]
    on_path: tuple[int, ...]
    focus: Mapping[int, str]  # suspect rank -> id of its biggest site node
    total_bytes: float
    samples: int
    pruned_nodes: int  # nodes left out to stay under max_nodes (their bytes stay in the parent)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class EndpointBytes:
    endpoint: str
    retained_bytes: float
    requests: int  # distinct trace ids among the samples (0 when samples carry none)

    @property
    def bytes_per_request(self) -> float | None:
        return self.retained_bytes / self.requests if self.requests else None


def samples_of(profile: DecodedProfile, sample_type: str = "inuse_space") -> tuple[HeapSample, ...]:
    """The samples of one value type (live bytes by default) that hold anything."""
    names = [t for t, _ in profile.sample_types]
    if sample_type not in names:
        raise ValueError(
            f"profile has no {sample_type!r} values (it has {', '.join(names) or 'none'})"
        )
    idx = names.index(sample_type)
    return tuple(
        HeapSample(s.frames, float(s.values[idx]), s.labels)
        for s in profile.samples
        if s.values[idx] > 0
    )


def suspect_key(s: Suspect) -> tuple[Frame, ...]:
    # Documents from before the grouping key was written: its first user frame stands in.
    return s.key or s.frames[:1]


def site_index(stack: Sequence[Frame], key: Sequence[Frame], *, max_gap: int = 32) -> int | None:
    """Index in `stack` (leaf first) of the suspect's site, or None when the stack is not its."""
    if not key:
        return None
    for i, frame in enumerate(stack):
        if frame == key[0]:
            j, last = 1, i
            for k in range(i + 1, min(len(stack), i + 1 + max_gap * len(key))):
                if j == len(key):
                    break
                if stack[k] == key[j]:
                    j, last = j + 1, k
                elif k - last > max_gap:
                    break
            if j == len(key):
                return i
            return None  # the first occurrence decides, as the analyzer's grouping does
    return None


def _label(frame: Frame) -> str:
    return f"{frame.function}:{frame.line}" if frame.line else frame.function


def _detail(frame: Frame) -> str:
    return f"{frame.function} ({frame.file}:{frame.line})"


class _Node:
    __slots__ = ("children", "depth", "frame", "path_rank", "rank", "value")

    def __init__(self, frame: Frame | None, depth: int) -> None:
        self.frame = frame
        self.depth = depth
        self.value = 0.0
        self.rank = 0
        self.path_rank = 0
        self.children: dict[Frame, _Node] = {}


def flame_graph(
    samples: Iterable[HeapSample],
    suspects: Sequence[Suspect] = (),
    *,
    max_nodes: int = 3000,
    root_label: str = "live heap",
) -> FlameGraph:
    """Merge stacks into a tree (root = all live bytes, then outermost caller down to the
    allocating frame), mark suspects' sites, and keep at most `max_nodes` nodes: the biggest,
    plus every marked site and its callers, so a suspect is never pruned away."""
    if max_nodes < 1:
        raise ValueError("max_nodes >= 1")
    root = _Node(None, 0)
    keys = [suspect_key(s) for s in suspects]
    sites: dict[int, dict[int, _Node]] = {}  # rank -> id(node) -> node
    count = 0
    for sample in samples:
        count += 1
        stack = sample.frames
        marks: dict[int, int] = {}
        for rank, key in enumerate(keys, 1):
            i = site_index(stack, key)
            if i is not None:
                marks.setdefault(len(stack) - 1 - i, rank)  # depth below the root, root-first
        node = root
        node.value += sample.inuse_bytes
        for depth, frame in enumerate(reversed(stack)):
            child = node.children.get(frame)
            if child is None:
                child = node.children[frame] = _Node(frame, depth + 1)
            child.value += sample.inuse_bytes
            mark = marks.get(depth)
            if mark is not None and (child.rank == 0 or mark < child.rank):
                if child.rank:  # a higher-ranked suspect claims a node another one had
                    sites[child.rank].pop(id(child), None)
                child.rank = mark
                sites.setdefault(mark, {})[id(child)] = child
            node = child
    # Keep the biggest nodes. A parent holds at least its children's bytes, so the biggest
    # N (ties broken by depth) are closed under "parent of"; marked sites join with callers.
    order: list[tuple[float, int, _Node, _Node | None]] = []
    stack_: list[tuple[_Node, _Node | None]] = [(root, None)]
    parent_of: dict[int, _Node | None] = {}
    while stack_:
        node, parent = stack_.pop()
        parent_of[id(node)] = parent
        order.append((node.value, node.depth, node, parent))
        stack_.extend((c, node) for c in node.children.values())
    order.sort(key=lambda e: (-e[0], e[1]))
    keep = {id(e[2]) for e in order[:max_nodes]}
    for rank, found in sites.items():
        for site in found.values():
            n: _Node | None = site
            while n is not None:
                keep.add(id(n))
                if n is not site and (n.path_rank == 0 or rank < n.path_rank):
                    n.path_rank = rank
                n = parent_of[id(n)]
    ids: list[str] = []
    labels: list[str] = []
    parents: list[str] = []
    values: list[float] = []
    details: list[str] = []
    ranks: list[int] = []
    on_path: list[int] = []
    node_id: dict[int, str] = {}
    queue: list[tuple[_Node, int]] = [(root, 0)]  # breadth first: parents before children
    head = 0
    while head < len(queue):
        node, inherited = queue[head]
        head += 1
        nid = ROOT_ID if node is root else f"n{len(ids)}"
        node_id[id(node)] = nid
        rank = node.rank or inherited
        ids.append(nid)
        parent = parent_of[id(node)]
        parents.append("" if parent is None else node_id[id(parent)])
        values.append(node.value)
        ranks.append(rank)
        on_path.append(node.path_rank)
        if node.frame is None:
            labels.append(root_label)
            details.append(f"{root_label}: {count} samples")
        else:
            labels.append(_label(node.frame))
            details.append(_detail(node.frame))
        for child in sorted(node.children.values(), key=lambda c: -c.value):
            if id(child) in keep:
                queue.append((child, rank))
    focus = {
        rank: node_id[id(max(found.values(), key=lambda n: n.value))]
        for rank, found in sites.items()
        if found
    }
    return FlameGraph(
        ids=tuple(ids),
        labels=tuple(labels),
        parents=tuple(parents),
        values=tuple(values),
        details=tuple(details),
        suspect=tuple(ranks),
        on_path=tuple(on_path),
        focus=focus,
        total_bytes=root.value,
        samples=count,
        pruned_nodes=len(order) - len(ids),
    )


def endpoint_bytes(
    samples: Iterable[HeapSample], suspects: Sequence[Suspect], *, top: int = 5
) -> dict[int, tuple[EndpointBytes, ...]]:
    """Per suspect rank: live bytes by endpoint (the samples' `span_name` label), biggest
    first. A suspect whose samples carry no endpoint label is left out: not known."""
    keys = [suspect_key(s) for s in suspects]
    acc: dict[int, dict[str, list[float]]] = {}
    traces: dict[tuple[int, str], set[str]] = {}
    for sample in samples:
        endpoint = sample.labels.get(ENDPOINT_LABEL)
        if not endpoint:
            continue
        for rank, key in enumerate(keys, 1):
            if site_index(sample.frames, key) is None:
                continue
            acc.setdefault(rank, {}).setdefault(endpoint, [0.0])[0] += sample.inuse_bytes
            trace = sample.labels.get(TRACE_LABEL)
            if trace:
                traces.setdefault((rank, endpoint), set()).add(trace)
            break  # one suspect per sample, the higher ranked
    out: dict[int, tuple[EndpointBytes, ...]] = {}
    for rank, by_endpoint in acc.items():
        rows = [
            EndpointBytes(ep, v[0], len(traces.get((rank, ep), ())))
            for ep, v in by_endpoint.items()
        ]
        rows.sort(key=lambda r: -r.retained_bytes)
        out[rank] = tuple(rows[:top])
    return out


def short_path(file: str, *, keep: int = 3) -> str:
    """The last `keep` components of a path, for table cells."""
    parts = file.replace(os.sep, "/").split("/")
    return "/".join(parts[-keep:]) if len(parts) > keep else file
