"""An ordinary Flask service for the crash soak (bench/soak_crash.py). It knows nothing of
leaktrace: `leaktrace run` starts it. Each request opens a span and allocates the way services
do, with other context variables present (Flask's request locals, decimal's context)."""

from __future__ import annotations

import decimal
import sys
from collections import OrderedDict

from flask import Flask, jsonify, request
from opentelemetry import trace

app = Flask(__name__)
tracer = trace.get_tracer("soak.flask")
_recent: OrderedDict[int, list[str]] = OrderedDict()  # bounded: a cache, not a leak


@app.get("/work/<int:n>")
def work(n: int) -> object:
    with tracer.start_as_current_span("work") as span:
        span.set_attribute("n", n)
        with decimal.localcontext() as ctx:
            ctx.prec = 12
            total = sum(decimal.Decimal(i) / 7 for i in range(n % 50 + 5))
        rows = [{"i": i, "s": str(i) * 3, "t": (i, str(i))} for i in range(n % 200 + 20)]
        try:
            {}[n]
        except KeyError:
            pass
        _recent[n] = [r["s"] for r in rows[:10]]
        while len(_recent) > 500:
            _recent.popitem(last=False)
        return jsonify(
            total=str(total), rows=len(rows), agent=request.headers.get("user-agent", "")
        )


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
