"""bgservices: background services inside a Python application.

Daemon-safe services run in daemon threads (best effort); critical services run in
non-daemon threads that the supervisor stops and joins, so their cleanup always runs.
"""

from .backoff import Backoff
from .config import from_config, load_config
from .errors import ConfigError, DoNotRestart, Problem
from .options import option
from .periodic import PeriodicService
from .registry import register
from .service import Service
from .state import LifecycleEvent, ServiceState
from .supervisor import EXIT_STRAGGLER, Phase, StopReport, Supervisor

__version__ = "0.1.0.dev0"

__all__ = [
    "EXIT_STRAGGLER",
    "Backoff",
    "ConfigError",
    "DoNotRestart",
    "LifecycleEvent",
    "PeriodicService",
    "Phase",
    "Problem",
    "Service",
    "ServiceState",
    "StopReport",
    "Supervisor",
    "from_config",
    "load_config",
    "option",
    "register",
]
