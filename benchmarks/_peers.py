"""The peers users would pick instead, set up with the best settings they offer."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import version
from typing import Any


def apscheduler_version() -> str:
    return version("apscheduler")


def peer_versions() -> str:
    names = ("apscheduler", "structlog", "requests", "psutil", "msgspec")
    return ", ".join(f"{name} {version(name)}" for name in names)


def start_apscheduler(jobs: int, interval: float, func: Callable[[], Any], **trigger: Any) -> Any:
    """A started APScheduler 3 BackgroundScheduler with *jobs* interval jobs.

    Its thread pool is sized to the jobs (up to 20) so no job waits for a worker, and jobs
    coalesce with a generous misfire grace: the settings that keep it on time.
    """
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(min(jobs, 20))},
        job_defaults={"coalesce": True, "misfire_grace_time": 30, "max_instances": 1},
    )
    for n in range(jobs):
        scheduler.add_job(func, "interval", seconds=interval, id=f"job{n}", **trigger)
    scheduler.start()
    return scheduler
