#!/usr/bin/env python3
"""Write the provisioned dashboards from their code, or check that they are in sync.

python grafana/generate.py          # (re)write grafana/dashboards/*.json
python grafana/generate.py --check  # exit 1 and name the files that differ
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "dashboards"

if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from dashboards_src import before_after, canary_gate, datasources, leak_hunt  # noqa: E402 - after sys.path

BUILDERS: dict[str, Callable[[], dict[str, Any]]] = {
    "leak-hunt.json": leak_hunt.build,
    "before-after.json": before_after.build,
    "canary-gate.json": canary_gate.build,
}


def render(build: Callable[[], dict[str, Any]]) -> str:
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """File name -> the JSON text the code produces."""
    return {name: render(build) for name, build in BUILDERS.items()}


def portable() -> dict[str, dict[str, Any]]:
    """File name -> the dashboard with datasource template variables (what the mixin ships);
    `datasources.substitute(board, datasources.COMPOSE_UIDS)` gives back the provisioned one."""
    return {name: datasources.templated(build()) for name, build in BUILDERS.items()}


def out_of_sync(out_dir: Path = OUT_DIR) -> list[str]:
    stale = []
    for name, text in rendered().items():
        path = out_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--check", action="store_true", help="only compare; exit 1 when out of sync"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = out_of_sync()
        if stale:
            print(
                "out of sync with grafana/dashboards_src (run python grafana/generate.py): "
                + ", ".join(stale),
                file=sys.stderr,
            )
            return 1
        return 0
    OUT_DIR.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (OUT_DIR / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
