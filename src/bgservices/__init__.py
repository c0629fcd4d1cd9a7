"""bgservices: background services inside a Python application.

Daemon-safe services run in daemon threads (best effort); critical services run in
non-daemon threads that the supervisor stops and joins, so their cleanup always runs.
"""

from typing import TYPE_CHECKING, Any

from .backoff import Backoff
from .config import from_config, load_config
from .errors import ConfigError, DoNotRestart, Problem
from .options import option
from .periodic import PeriodicService
from .registry import register
from .service import Service
from .state import LifecycleEvent, ServiceState
from .supervisor import EXIT_STRAGGLER, Phase, StopReport, Supervisor

if TYPE_CHECKING:
    from .aio import AsyncPeriodicService, AsyncService

    __version__: str

# bgservices.aio and ._loop load on first use, about 5% of `import bgservices` (-X importtime);
# asyncio itself is not saved: structlog imports it.
_LAZY = {"AsyncService", "AsyncPeriodicService"}


def __getattr__(name: str) -> Any:
    """The async classes, imported on first use (so ``import bgservices`` stays light), and
    ``__version__``, read from the installed metadata (pyproject's) on first use."""
    if name in _LAZY:
        from . import aio

        value = getattr(aio, name)
        globals()[name] = value
        return value
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("bgservices")
        except PackageNotFoundError:  # imported from a source tree that was never installed
            found = "0+unknown"
        globals()["__version__"] = found
        return found
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EXIT_STRAGGLER",
    "AsyncPeriodicService",
    "AsyncService",
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
