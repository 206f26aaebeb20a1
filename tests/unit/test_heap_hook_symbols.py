"""The allocator hook calls only what docs/heap-profiler.md lists ("What the hook calls").

The hook-path files are compiled for the running interpreter, and their undefined symbols are
read with `nm`. A new call into CPython (or anything else) from the hook fails here until it is
on the list with the reason it is safe inside an allocation; a listed CPython function the hook
no longer calls fails too, so the list stays exact. Compiles C, so it is marked `native`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "instrumentation" / "leaktrace" / "profiling" / "_native"
DOC = ROOT / "docs" / "heap-profiler.md"
HOOK_PATH = ("hooks.c", "live.c", "agg.c", "stacks.c", "span.c")
OUTSIDE = ("module.c", "tables.c")
VERSION = f"{sys.version_info[0]}.{sys.version_info[1]}"

pytestmark = [
    pytest.mark.native,
    pytest.mark.subprocess,  # runs gcc and nm (tests/unit/conftest.py)
    pytest.mark.skipif(
        shutil.which("gcc") is None or shutil.which("nm") is None, reason="needs gcc and nm"
    ),
]


def documented() -> dict[str, set[str]]:
    """symbol -> the versions it is listed for ('all' or '3.x')."""
    text = DOC.read_text()
    section = text[text.index("### What the hook calls") :]
    section = section[: section.index("\n**", 1)]
    out: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        versions = {v.strip() for v in cells[1].split(",")}
        for name in re.findall(r"`([^`]+)`", cells[0]):
            out[name] = versions
    return out


def compile_object(src: str, out_dir: Path) -> Path:
    obj = out_dir / (Path(src).stem + ".o")
    cflags = (sysconfig.get_config_var("CFLAGS") or "").split()
    proc = subprocess.run(
        ["gcc", "-c", *cflags, "-fPIC", "-O2", "-std=c11", f"-I{sysconfig.get_paths()['include']}",
         f"-I{NATIVE}", str(NATIVE / src), "-o", str(obj)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return obj


def symbols(obj: Path, *flags: str) -> dict[str, str]:
    """name -> nm type letter."""
    out = subprocess.run(
        ["nm", *flags, str(obj)], capture_output=True, text=True, check=True
    ).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            found[parts[-1]] = parts[-2]
    return found


def test_the_doc_lists_every_symbol_the_hook_path_imports_and_no_more(tmp_path: Path) -> None:
    hook_objs = [compile_object(src, tmp_path) for src in HOOK_PATH]
    outside_objs = [compile_object(src, tmp_path) for src in OUTSIDE]
    ours_defined: dict[str, str] = {}
    for obj in hook_objs + outside_objs:
        ours_defined.update(symbols(obj, "--defined-only"))
    hook_defined: dict[str, str] = {}
    for obj in hook_objs:
        hook_defined.update(symbols(obj, "--defined-only"))
    imported: set[str] = set()
    for obj in hook_objs:
        imported |= set(symbols(obj, "-u"))

    # Our own functions called from the hook are defined in hook-path files; data of ours is fine.
    calls_outside = sorted(
        s
        for s in imported
        if s in ours_defined and s not in hook_defined and ours_defined[s] in "Tt"
    )
    assert calls_outside == [], f"the hook calls functions of module.c/tables.c: {calls_outside}"

    foreign = {s for s in imported if s not in ours_defined}
    listed = documented()
    for_this_version = {
        s for s, versions in listed.items() if "all" in versions or VERSION in versions
    }
    unlisted = sorted(foreign - for_this_version)
    assert unlisted == [], (
        f"the hook path calls {unlisted}: list them with a reason in {DOC.name} or remove the calls"
    )
    # CPython names on the list for this version must still be imported: the list stays exact.
    stale = sorted(s for s in for_this_version - foreign if re.match(r"_?Py", s))
    assert stale == [], f"{DOC.name} lists {stale} for {VERSION}, which the hook no longer uses"


def test_the_parser_reads_the_table() -> None:
    listed = documented()
    # the doc's table is what the test above enforces; an unparsed table would make it vacuous
    assert "PyCode_Addr2Line" in listed and listed["PyCode_Addr2Line"] == {"all"}
    assert listed["_PyThreadState_UncheckedGet"] == {"3.11", "3.12"}
    assert "PyContextVar_Get" not in listed
