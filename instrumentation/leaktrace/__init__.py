"""leaktrace: find memory leaks in Python services and tie them to the requests behind them.

Importing this package starts nothing; `init()` builds and starts a `Telemetry`.
"""

from .config import ConfigError, Settings
from .startup import init
from .telemetry import Telemetry

__version__ = "0.1.0"

__all__ = ["ConfigError", "Settings", "Telemetry", "__version__", "init"]
