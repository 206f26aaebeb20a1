"""One suspect per leak: lines of one function, one caller and one holder merge (issue 16)."""

from __future__ import annotations

import io

from leaktrace.analysis.grouping import merge_suspects
from leaktrace.analysis.model import EndpointShare, Holder, Report, Suspect, TimeSeries
from leaktrace.profiling.samples import Frame
from leaktrace.report.text import render_text

INIT_12 = Frame("Session.__init__", "/app/session.py", 12)
INIT_13 = Frame("Session.__init__", "/app/session.py", 13)
CALLER = Frame("login", "/app/views.py", 40)
OTHER_CALLER = Frame("signup", "/app/views.py", 60)
CACHE = Holder("app.views.SESSIONS", "dict", 300, 10.0, 4096.0, 0.97)
AUDIT = Holder("app.views.AUDIT", "list", 300, 10.0, 1024.0, 0.95)
TIMES = (1.0, 2.0, 3.0)


def suspect(
    top: Frame,
    caller: Frame,
    growth: float,
    holder: Holder | None,
    traces: tuple[str, ...],
    endpoints: tuple[EndpointShare, ...] = (),
) -> Suspect:
    return Suspect(
        frames=(top, caller),
        growth_bytes_per_s=growth,
        retained_bytes=int(growth * 10),
        objects=10,
        p_value=1e-6 if growth > 5000 else 1e-4,
        trace_ids=traces,
        holder=holder,
        key=(top, caller),
        span_ids=tuple("%016x" % (i + 1) for i in range(len(traces))),
        retained_series=TimeSeries(TIMES, (growth, 2 * growth, 3 * growth)),
        lines=(top.line,),
        endpoints=endpoints,
    )


def test_two_lines_of_one_constructor_kept_by_one_holder_are_one_suspect() -> None:
    a = suspect(
        INIT_12,
        CALLER,
        8000.0,
        CACHE,
        ("a" * 32, "b" * 32),
        (EndpointShare("POST /login/{user}", 60_000.0, 100),),
    )
    b = suspect(
        INIT_13,
        CALLER,
        4000.0,
        CACHE,
        ("b" * 32, "c" * 32),
        (EndpointShare("POST /login/{user}", 30_000.0, 100),),
    )
    [merged] = merge_suspects([a, b])
    assert merged.lines == (12, 13)
    assert merged.site == "session.Session.__init__:12,13"
    assert merged.growth_bytes_per_s == 12000.0
    assert merged.retained_bytes == a.retained_bytes + b.retained_bytes
    assert merged.trace_ids == ("a" * 32, "b" * 32, "c" * 32)
    assert len(merged.span_ids) == 3
    assert merged.retained_series.values == (12000.0, 24000.0, 36000.0)
    assert merged.p_value == 1e-6
    [login] = merged.endpoints
    assert (login.retained_bytes, login.requests, login.bytes_per_request) == (90_000.0, 100, 900.0)
    # The report lists the lines inside the suspect, in text and JSON alike.
    report = Report(duration_s=10.0, rss_growth_bytes_per_s=12000.0, suspects=(merged,))
    out = io.StringIO()
    render_text(report, out, verbose=True)
    text = out.getvalue()
    assert (
        "#1 session.Session.__init__:12,13" in text and "lines 12, 13 of Session.__init__" in text
    )
    assert "POST /login/{user}: 900 B per request (100 requests)" in text
    doc = report.to_json_dict()
    assert doc["suspects"][0]["lines"] == [12, 13]
    assert doc["suspects"][0]["endpoints"][0] == {
        "name": "POST /login/{user}",
        "retained_bytes": 90000,
        "requests": 100,
        "bytes_per_request": 900.0,
    }
    back = Report.from_json_dict(doc)
    assert back.suspects[0].lines == (12, 13) and back.suspects[0].endpoints[0].requests == 100
    parent = io.StringIO()
    render_text(Report.from_json_dict(doc), parent)
    assert "session.Session.__init__:12,13" in parent.getvalue()
    assert "POST /login/{user}: 900 B per request" in parent.getvalue()


def test_different_callers_or_holders_stay_apart() -> None:
    a = suspect(INIT_12, CALLER, 8000.0, CACHE, ())
    other_caller = suspect(INIT_13, OTHER_CALLER, 4000.0, CACHE, ())
    other_holder = suspect(INIT_13, CALLER, 3000.0, AUDIT, ())
    merged = merge_suspects([other_holder, a, other_caller])
    assert [s.lines for s in merged] == [(12,), (13,), (13,)]
    assert [s.growth_bytes_per_s for s in merged] == [8000.0, 4000.0, 3000.0]  # fastest first


def test_unknown_holders_merge_with_each_other_only() -> None:
    a = suspect(INIT_12, CALLER, 8000.0, None, ())
    b = suspect(INIT_13, CALLER, 4000.0, None, ())
    c = suspect(INIT_13, CALLER, 2000.0, CACHE, ())
    merged = merge_suspects([a, b, c])
    assert [s.lines for s in merged] == [(12, 13), (13,)]


def test_comprehensions_spread_over_lines_of_one_literal_are_one_suspect() -> None:
    # 3.11: a generator expression and a list comprehension of one dict literal are frames of
    # their own, called from the function at the line they sit on.
    genexpr = Frame("subscribe.<locals>.<genexpr>", "/app/subs.py", 31)
    listcomp = Frame("subscribe.<locals>.<listcomp>", "/app/subs.py", 32)
    handle = Frame("handle", "/app/subs.py", 40)
    a = Suspect(
        frames=(genexpr, Frame("subscribe", "/app/subs.py", 31), handle),
        growth_bytes_per_s=9000.0,
        retained_bytes=90_000,
        objects=10,
        p_value=1e-9,
        holder=CACHE,
        key=(genexpr, Frame("subscribe", "/app/subs.py", 31)),
        lines=(31,),
    )
    b = Suspect(
        frames=(listcomp, Frame("subscribe", "/app/subs.py", 32), handle),
        growth_bytes_per_s=5000.0,
        retained_bytes=50_000,
        objects=10,
        p_value=1e-9,
        holder=CACHE,
        key=(listcomp, Frame("subscribe", "/app/subs.py", 32)),
        lines=(32,),
    )
    [merged] = merge_suspects([a, b])
    assert merged.lines == (31, 32)
    assert merged.frames[0].function == "subscribe" and merged.site == "subs.subscribe:31,32"


def test_a_merged_verdict_keeps_its_identity_when_its_biggest_line_changes() -> None:
    from leaktrace.analysis.verdicts import verdict_identity

    a = suspect(INIT_12, CALLER, 8000.0, CACHE, ())
    b = suspect(INIT_13, CALLER, 4000.0, CACHE, ())
    assert (
        verdict_identity(a)
        == verdict_identity(b)
        == "/app/session.py:Session.__init__ <- /app/views.login:40"
    )
    assert verdict_identity(suspect(INIT_12, OTHER_CALLER, 1.0, CACHE, ())) != verdict_identity(a)
