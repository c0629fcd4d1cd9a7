"""Cost of one ``MemoryMonitor`` sample on this process, at default settings and with USS."""

from __future__ import annotations

import time

from bgservices.services import MemoryMonitor

from ._common import Result, standalone


def cost_us(monitor: MemoryMonitor, samples: int) -> float:
    monitor.sample()
    began = time.perf_counter()
    for _ in range(samples):
        monitor.sample()
    return (time.perf_counter() - began) / samples * 1e6


def run(quick: bool = False) -> list[Result]:
    samples = 200 if quick else 2000
    default, with_uss = MemoryMonitor(), MemoryMonitor(uss=True)
    default.setup()
    with_uss.setup()
    ours = cost_us(default, samples)
    uss = cost_us(with_uss, samples // 10)
    return [
        Result(
            name="memory monitor, one sample",
            unit="us",
            ours=ours,
            peers={"same, with uss=True": uss},
            ratio=uss / ours,
            target="reported (USS is opt-in because it costs more)",
        )
    ]


if __name__ == "__main__":
    standalone(run, __doc__)
