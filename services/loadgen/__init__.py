"""Load generator: a fixed request rate with user churn, bounded in request count and time.

Library use (the benchmark drives two targets with it)::

    from services.loadgen import LoadConfig, run_load
    report = run_load(LoadConfig(target="http://127.0.0.1:8001", rate=50, duration_s=10))
"""

from services.loadgen.driver import LoadConfig, LoadReport, Progress, drive, run_load
from services.loadgen.scenario import Mix, PlannedRequest, Scenario

__all__ = [
    "LoadConfig",
    "LoadReport",
    "Mix",
    "PlannedRequest",
    "Progress",
    "Scenario",
    "drive",
    "run_load",
]
