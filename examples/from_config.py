"""Configure services from a TOML file (or a plain dict) and see how problems are reported.

Run it: ``python examples/from_config.py``
"""

from __future__ import annotations

from pathlib import Path

from bgservices import ConfigError, from_config, load_config

# python puts this script's folder on sys.path, so "prices:load_prices" imports; the
# bgservices command does the same for the current directory (and --app-dir).
HERE = Path(__file__).parent

config = load_config(HERE / "services.toml")
with from_config(config) as sup:
    sup["warm"].wait_ready(5)  # type: ignore[attr-defined]
    print("started:", ", ".join(f"{s.name} ({s.status()['type']})" for s in sup))
    print("apple costs", sup["warm"].cache.get("apple"))  # type: ignore[attr-defined]

broken = {
    "services": {
        "memory": {"type": "memory_monitor", "interval": 0, "rss_limit": 512},
        "warm": {"type": "cache_warmr"},
    }
}
try:
    from_config(broken)
except ConfigError as err:
    print(f"invalid configuration, nothing started:\n{err}")
