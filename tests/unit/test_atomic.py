"""leaktrace._atomic: whole-file replacement, the permission bits, nothing left on failure."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from leaktrace._atomic import PUBLIC, write_atomic, write_json_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask() -> int:
    # Read from /proc (Linux) rather than os.umask(), which would change it for every thread.
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return int(line.split()[1], 8)
    pytest.skip("no /proc/self/status Umask line")


def test_replaces_the_content_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "r.bin"
    target.write_bytes(b"old")
    write_atomic(target, b"new", prefix=".r-", suffix=".tmp")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.bin"]


def test_private_by_default_public_follows_the_umask(tmp_path: Path) -> None:
    write_atomic(tmp_path / "private", b"x", prefix=".p-")
    write_atomic(tmp_path / "public", b"x", prefix=".p-", mode=PUBLIC)
    assert _mode(tmp_path / "private") == 0o600
    assert _mode(tmp_path / "public") == 0o666 & ~_umask()


def test_failure_keeps_the_target_and_removes_the_temporary(tmp_path: Path) -> None:
    target = tmp_path / "busy"
    target.mkdir()  # os.replace of a file onto a directory fails
    (target / "keep").write_text("k")
    with pytest.raises(OSError):
        write_atomic(target, b"new", prefix=".busy-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]
    assert (target / "keep").read_text() == "k"


def test_unserialisable_json_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "r.json", {"x": object()}, prefix=".r-")
    assert list(tmp_path.iterdir()) == []


def test_json_formatting_options(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    doc = {"b": 1, "a": [1, 2]}
    write_json_atomic(target, doc, prefix=".r-", indent=2, sort_keys=True, newline=True)
    assert target.read_text() == json.dumps(doc, indent=2, sort_keys=True) + "\n"
    write_json_atomic(os.fspath(target), doc, prefix=".r-")
    assert target.read_text() == json.dumps(doc)
