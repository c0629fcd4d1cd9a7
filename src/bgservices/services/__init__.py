"""The built-in services. Importing this package registers their type names."""

from typing import TYPE_CHECKING, Any

from .cache import CacheBackend, CacheWarmer, MemoryCache
from .keepalive import Health, KeepAlive
from .logs import LogCollector
from .memory import MemoryMonitor, MemorySample

if TYPE_CHECKING:
    from ._redis_cache import RedisCache

__all__ = [
    "CacheBackend",
    "CacheWarmer",
    "Health",
    "KeepAlive",
    "LogCollector",
    "MemoryCache",
    "MemoryMonitor",
    "MemorySample",
    "RedisCache",
]


def __getattr__(name: str) -> Any:
    """``RedisCache`` is imported on first use: it needs the optional ``redis`` package."""
    if name == "RedisCache":
        from ._redis_cache import RedisCache

        return RedisCache
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
