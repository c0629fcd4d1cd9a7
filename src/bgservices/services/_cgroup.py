"""Memory limits of the control group the process runs in (cgroup v2, else v1).

psutil reports the host's memory; inside a container the limit that gets a process killed is
its cgroup's, so the memory monitor measures against that when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CgroupMemory", "find_cgroup_memory"]

_V1_UNLIMITED = 2**62  # v1 reports "no limit" as a page-aligned value near 2**63


@dataclass(frozen=True)
class CgroupMemory:
    """Where to read the limit and usage, once found."""

    version: int
    limit_file: Path
    usage_file: Path

    def read(self) -> tuple[int | None, int | None]:
        """(limit, usage) in bytes; limit None when unlimited, both None if unreadable."""
        try:
            raw_limit = self.limit_file.read_text().strip()
            usage = int(self.usage_file.read_text().strip())
        except (OSError, ValueError):
            return None, None
        if raw_limit == "max":
            return None, usage
        limit = int(raw_limit)
        return (None if limit >= _V1_UNLIMITED else limit), usage


def find_cgroup_memory(
    root: Path = Path("/sys/fs/cgroup"), proc_cgroup: Path = Path("/proc/self/cgroup")
) -> CgroupMemory | None:
    """The memory controller files for this process, or None where there are none."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    paths = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        paths[controllers] = path.lstrip("/")
    v2_path = paths.get("")
    if v2_path is not None:
        for base in (root, root / "unified"):
            for directory in (base / v2_path, base):
                if (directory / "memory.max").is_file():
                    return CgroupMemory(2, directory / "memory.max", directory / "memory.current")
    v1_path = next((p for c, p in paths.items() if "memory" in c.split(",")), None)
    if v1_path is not None:
        for directory in (root / "memory" / v1_path, root / "memory"):
            if (directory / "memory.limit_in_bytes").is_file():
                return CgroupMemory(
                    1, directory / "memory.limit_in_bytes", directory / "memory.usage_in_bytes"
                )
    return None
