"""An ordinary FastAPI service for the crash soak (bench/soak_crash.py), run by uvicorn under
`leaktrace run`. Async and sync (thread-pool) endpoints, spans per request, other context
variables present (sniffio/anyio's, decimal's), exceptions unwinding through spans."""

from __future__ import annotations

import asyncio
import decimal
from collections import OrderedDict

from fastapi import FastAPI
from opentelemetry import trace

app = FastAPI()
tracer = trace.get_tracer("soak.fastapi")
_recent: OrderedDict[int, list[str]] = OrderedDict()  # bounded: a cache, not a leak


def _rows(n: int) -> list[dict[str, object]]:
    return [{"i": i, "s": str(i) * 3, "t": (i, str(i))} for i in range(n % 200 + 20)]


@app.get("/work/{n}")
async def work(n: int) -> dict[str, object]:
    with tracer.start_as_current_span("work"):
        rows = _rows(n)
        await asyncio.sleep(0)
        with decimal.localcontext() as ctx:
            ctx.prec = 12
            total = sum(decimal.Decimal(i) / 7 for i in range(n % 50 + 5))
        try:
            with tracer.start_as_current_span("fails"):
                raise ValueError(f"bad {n}")
        except ValueError:
            pass
        _recent[n] = [str(r["s"]) for r in rows[:10]]
        while len(_recent) > 500:
            _recent.popitem(last=False)
        return {"total": str(total), "rows": len(rows)}


@app.get("/sync/{n}")
def sync_work(n: int) -> dict[str, object]:
    with tracer.start_as_current_span("sync"):
        return {"rows": len(_rows(n))}
