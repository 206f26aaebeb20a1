"""The HTML hunt report in a real browser: `leaktrace hunt --html --pprof` and `leaktrace demo
--html` as a user runs them, then the page opened from its file in headless Chromium (Debian's
`chromium`, which .ci/run installs) with no network, over the DevTools protocol.

Each page must render its charts and flame graph (SVG drawn by plotly.js), name the holder and
the call path in its suspects table, give a screenshot that is not blank, and request nothing
but its own file. The demo's screenshot is the README's: set LEAKTRACE_SCREENSHOT to a path
(docs/images/demo-report.png) to keep it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import pprof_proto
from tests.support.browser import Chromium, Page, decode_png, find_chromium, variance

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"
ENV = {
    "PATH": "/usr/bin:/bin",
    "OTEL_TRACES_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    "LEAKTRACE_CPU_PROFILING_ENABLED": "false",
    "PYROSCOPE_SERVER_ADDRESS": "http://127.0.0.1:9",
    # A source tree given on PYTHONPATH (a worktree, a CI checkout) is the one under test.
    **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
}

if find_chromium() is None:
    # CI installs chromium (.ci/run), so there a missing browser is a failure, not a skip.
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed: .ci/run should have installed it", pytrace=False)
    pytest.skip("chromium not installed (apt-get install chromium)", allow_module_level=True)


def leaktrace(
    *args: str, timeout: float = 150, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "leaktrace", *args],
        env=env or ENV,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    with Chromium(width=1600, height=1000) as b:
        yield b


@pytest.fixture(scope="module")
def hunt_outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("hunt")
    paths = {"html": out / "report.html", "pprof": out / "heap.pb.gz", "json": out / "report.json"}
    done = leaktrace(
        "hunt",
        "--duration",
        "20",
        "--html",
        str(paths["html"]),
        "--pprof",
        str(paths["pprof"]),
        "--json",
        str(paths["json"]),
        "--",
        sys.executable,
        str(CORPUS / "global_dict.py"),
        "--duration",
        "60",
        env={**ENV, "LEAKTRACE_GRAFANA_URL": "http://127.0.0.1:3000"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"wrote {paths['html']}" in done.stdout and f"wrote {paths['pprof']}" in done.stdout
    return paths


def open_report(browser: Chromium, path: Path) -> Page:
    page = browser.open(path.as_uri(), timeout=60)
    # The page's own script marks the body once every plotly figure has been drawn.
    page.wait_for(
        "document.body.getAttribute('data-rendered') || document.body.getAttribute('data-render-error')",
        timeout=60,
    )
    assert page.evaluate("document.body.getAttribute('data-render-error')") is None
    browser.pump(0.5)  # let late requests, if any, arrive as events
    return page


def assert_offline(page: Page, path: Path) -> None:
    assert page.requests and page.requests[0] == path.as_uri()
    assert page.non_local_requests() == [], page.non_local_requests()
    assert page.violations() == []


def assert_not_blank(page: Page) -> bytes:
    png = page.screenshot(clip_height=1500)
    small = decode_png(page.screenshot(scale=0.25))
    gray = small.gray(step=1)
    # A blank page is one colour; this one has charts, text and the flame graph's many colours.
    assert variance(gray) > 500, variance(gray)
    colours = {small.pixels[i : i + 3] for i in range(0, len(small.pixels), small.channels * 7)}
    assert len(colours) > 50, len(colours)
    background = max(set(gray), key=gray.count)
    assert sum(1 for g in gray if abs(g - background) > 16) > 0.1 * len(gray)
    return png


def test_hunt_report_renders_offline_with_charts_flame_graph_and_table(
    browser: Chromium, hunt_outputs: dict[str, Path]
) -> None:
    html = hunt_outputs["html"]
    assert html.stat().st_size < 8_000_000
    started = time.monotonic()
    page = open_report(browser, html)
    assert time.monotonic() - started < 60
    assert_offline(page, html)
    # Charts: memory over the run and the suspect's bytes beside its holder's entries, drawn as SVG.
    assert (
        page.evaluate(
            "document.querySelectorAll('#run0-memory svg.main-svg .scatterlayer path.js-line').length"
        )
        >= 2
    )
    assert (
        page.evaluate(
            "document.querySelectorAll('#run0-growth svg.main-svg .scatterlayer path.js-line').length"
        )
        >= 2
    )
    # The flame graph: an icicle with many drawn frames, the suspect's in its colour.
    assert (
        page.evaluate(
            "document.querySelectorAll('#run0-flame svg.main-svg .iciclelayer path.surface').length"
        )
        > 30
    )
    assert page.evaluate(
        "Array.from(document.querySelectorAll('#run0-flame .iciclelayer path.surface'))"
        ".some(p => (p.style.fill || '').replace(/ /g, '') === 'rgb(214,39,40)')"
    )
    # The suspects table names the call path and its holder, and links trace ids to Grafana.
    row = page.evaluate("document.querySelector('#run0-suspect-1').innerText")
    site = next(n for n, text in enumerate((CORPUS / "global_dict.py").read_text().splitlines(), 1)
                if "# LEAK-SITE" in text)  # fmt: skip
    assert f"global_dict.make_session:{site}" in row and "SESSION_CACHE" in row, row
    links = page.evaluate(
        "Array.from(document.querySelectorAll('#run0-suspect-1 td.traces a')).map(a => a.href)"
    )
    assert links and all(
        link.startswith("http://127.0.0.1:3000/explore?schemaVersion=1&panes=") for link in links
    )
    # Clicking "show in flame graph" focuses the suspect's frame.
    page.evaluate("document.querySelector('#run0-suspect-1 button[data-focus]').click()")
    focus = page.evaluate(
        "document.querySelector('#run0-suspect-1 button[data-focus]').dataset.focus"
    )
    page.wait_for(f"document.getElementById('run0-flame').data[0].level === '{focus}'", timeout=10)
    page.wait_for(
        "document.querySelector('#run0-suspect-1').classList.contains('active')", timeout=10
    )
    assert_not_blank(page)
    assert page.non_local_requests() == [] and page.violations() == []


def test_hunt_pprof_is_a_standard_profile_with_the_pushed_types_and_labels(
    hunt_outputs: dict[str, Path],
) -> None:
    p = pprof_proto.parse(
        hunt_outputs["pprof"].read_bytes()
    )  # Google's protobuf runtime + go pprof's checks
    assert pprof_proto.sample_types(p) == [
        ("alloc_objects", "count"),
        ("alloc_space", "bytes"),
        ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ]
    stacks = pprof_proto.stacks(p)
    leak = [
        s
        for s in stacks
        if any(f[0] == "make_session" and f[1].endswith("global_dict.py") for f in s[0])
    ]
    assert sum(s[1][3] for s in leak) > 200_000  # ~100 KB/s for ~10 s, sampled
    labelled = [s for s in leak if "trace_id" in s[2]]
    assert labelled and all(
        len(s[2]["trace_id"]) == 32 and len(s[2]["span_id"]) == 16 for s in labelled
    )
    assert set().union(*(s[2] for s in stacks)) <= {"trace_id", "span_id", "span_name"}


def test_the_network_check_catches_a_page_that_fetches(browser: Chromium, tmp_path: Path) -> None:
    # The same assertions must fail on a page that asks for anything: an image, a script, a fetch.
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<html><body><img src="http://example.invalid/a.png"><script>fetch("https://cdn.invalid/x.js")'
        '.catch(() => 0); document.body.setAttribute("data-rendered", "1")</script></body></html>'
    )
    page = open_report(browser, bad)
    browser.pump(1.0)
    assert "http://example.invalid/a.png" in page.non_local_requests()
    assert "https://cdn.invalid/x.js" in page.non_local_requests()
    with pytest.raises(AssertionError):
        assert_offline(page, bad)
    blank = tmp_path / "blank.html"
    blank.write_text(
        '<html><body style="background:#fff"><script>document.body.setAttribute("data-rendered", "1")'
        "</script></body></html>"
    )
    with pytest.raises(AssertionError):
        assert_not_blank(open_report(browser, blank))


def test_demo_report_puts_leaky_and_fixed_side_by_side(browser: Chromium, tmp_path: Path) -> None:
    html = tmp_path / "demo.html"
    done = leaktrace("demo", "--duration", "15", "--html", str(html), timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert html.stat().st_size < 8_000_000
    page = open_report(browser, html)
    assert_offline(page, html)
    assert page.evaluate(
        "Array.from(document.querySelectorAll('section.run h2')).map(h => h.innerText)"
    )[0].startswith("leaky")
    names = page.evaluate(
        "Array.from(document.querySelectorAll('section.run')).map(s => s.dataset.run)"
    )
    assert names == ["leaky", "fixed"]
    # Side by side: the two columns share one row of the page.
    tops = page.evaluate(
        "Array.from(document.querySelectorAll('section.run')).map(s => s.getBoundingClientRect().top)"
    )
    assert abs(tops[0] - tops[1]) < 2
    for key in ("run0-memory", "run1-memory"):
        assert (
            page.evaluate(f"document.querySelectorAll('#{key} .scatterlayer path.js-line').length")
            >= 2
        )
    assert (
        page.evaluate("document.querySelectorAll('#run0-flame .iciclelayer path.surface').length")
        > 30
    )
    compare = page.evaluate("document.querySelector('table.compare').innerText")
    assert "RSS growth" in compare and "reduction" in page.evaluate(
        "document.querySelector('section.compare').innerText"
    )
    table = page.evaluate("document.querySelector('#run0 table.suspects').innerText")
    assert "services.leaky.app" in table and "app." in table, table
    png = assert_not_blank(page)
    target = os.environ.get("LEAKTRACE_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(html, Path(target).with_suffix(".html")) if os.environ.get(
            "LEAKTRACE_KEEP_HTML"
        ) else None
        Path(target).write_bytes(png)
