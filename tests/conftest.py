"""Shared fixtures. Plugins in tests/support are owned by the component that needs them."""

from __future__ import annotations

from collections.abc import Generator

import pytest

pytest_plugins = ["tests.support.prometheus"]

# tests/support/prometheus.py skips with a reason naming this package when the binaries are missing.
PROMETHEUS_PACKAGE = "prometheus"
_MISSING_PROMETHEUS = f"install the Debian package '{PROMETHEUS_PACKAGE}'"


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def skipped_for_missing_prometheus(reports: list[pytest.TestReport]) -> list[pytest.TestReport]:
    return [r for r in reports if _MISSING_PROMETHEUS in _skip_reason(r)]


def missing_prometheus_summary(count: int) -> str:
    return (
        f"{count} test{'s' if count != 1 else ''} SKIPPED: the Debian package "
        f"'{PROMETHEUS_PACKAGE}' (prometheus, promtool) is not installed, so the Prometheus "
        f"config, rules and PromQL were NOT checked. Install it: apt-get install {PROMETHEUS_PACKAGE}"
    )


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
) -> Generator[None, None, None]:
    # tryfirst makes this the outermost wrapper: it writes after pytest's own summaries (short
    # test summary included), just above the final counts line, so nobody mistakes a run without
    # Prometheus for a full one.
    yield
    skipped = skipped_for_missing_prometheus(terminalreporter.stats.get("skipped", []))
    if skipped:
        terminalreporter.write_sep("=", "Prometheus not installed", yellow=True, bold=True)
        terminalreporter.write_line(
            missing_prometheus_summary(len(skipped)), yellow=True, bold=True
        )
