"""The built-in services. Importing this package registers their type names."""

from ._redis_cache import RedisCache
from .cache import CacheBackend, CacheWarmer, MemoryCache
from .keepalive import Health, KeepAlive
from .logs import LogCollector
from .memory import MemoryMonitor, MemorySample

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
