"""Replace a file's whole content at once: readers see the old file or the new one, never a torn one.

The temporary file is made in the target's own directory, so `os.replace` is a rename within
one file system (atomic on POSIX). There is no fsync: these files (hunt reports, scrape-target
registrations, heap profiles, gate reports) must survive the writer being killed, which a
rename alone gives, not a power cut, which would cost every write a disk flush.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from typing import Any

#: Like `tempfile.mkstemp`: only the owner can read what the process writes for itself.
PRIVATE = 0o600
#: Like `open(path, "w")`: the umask decides, as for any file the user asks for by name.
PUBLIC = 0o666

_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_NOFOLLOW", 0)
)
_ATTEMPTS = 100  # random names: a clash is a sign of something else, so give up soon


def write_atomic(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    prefix: str,
    suffix: str = "",
    mode: int = PRIVATE,
) -> None:
    """Write `data` to `path` through a temporary `<prefix><random><suffix>` beside it.

    `mode` is the new file's permission bits before the umask. On any failure the temporary
    file is removed, `path` is left as it was, and the error propagates.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    fd, tmp = _create_temp(directory, prefix, suffix, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json_atomic(
    path: str | os.PathLike[str],
    doc: Mapping[str, Any],
    *,
    prefix: str,
    suffix: str = "",
    mode: int = PRIVATE,
    indent: int | None = None,
    sort_keys: bool = False,
    newline: bool = False,
) -> None:
    """`json.dumps(doc)` (with a final newline when `newline`) written by `write_atomic`."""
    text = json.dumps(doc, indent=indent, sort_keys=sort_keys)
    if newline:
        text += "\n"
    write_atomic(path, text.encode("utf-8"), prefix=prefix, suffix=suffix, mode=mode)


def _create_temp(directory: str, prefix: str, suffix: str, mode: int) -> tuple[int, str]:
    # tempfile.mkstemp would do for PRIVATE, but it fixes the mode at 0o600; one way for both.
    for _ in range(_ATTEMPTS):
        tmp = os.path.join(directory, f"{prefix}{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(tmp, _FLAGS, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory!r} after {_ATTEMPTS} attempts")
