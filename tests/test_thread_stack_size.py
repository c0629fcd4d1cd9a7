"""``Supervisor(thread_stack_size=...)``: validated, applied to service threads only, restored."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import pytest

from bgservices import ConfigError, Service, Supervisor
from bgservices import supervisor as supervisor_module
from bgservices._thread_stack import stack_size

from ._process import until


class _Idle(Service):
    def run(self) -> None:
        self.wait(60)


@pytest.mark.parametrize("size", [-1, 1, 32 * 1024 - 1, 256 * 1024 * 1024 + 1, 1.5, "64k"])
def test_a_size_threading_would_refuse_is_a_config_error(size: object) -> None:
    with pytest.raises(ConfigError, match="thread_stack_size"):
        Supervisor(thread_stack_size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [None, 0, 32 * 1024, 256 * 1024 * 1024])
def test_the_bounds_and_none_are_accepted(size: int | None) -> None:
    assert Supervisor(thread_stack_size=size, stop_at_exit=False).thread_stack_size == size


def test_the_process_wide_setting_is_put_back_after_each_start(make_supervisor) -> None:
    before = threading.stack_size()
    with make_supervisor(_Idle(name="a"), _Idle(name="b"), thread_stack_size=256 * 1024) as sup:
        assert sup.wait_running(5)
        assert threading.stack_size() == before
        # a thread started outside bgservices is not affected afterwards
        seen: list[int] = []
        other = threading.Thread(target=lambda: seen.append(threading.stack_size()))
        other.start()
        other.join(5)
        assert seen == [before]


def test_a_watchdog_started_during_another_launch_gets_the_applications_size(
    make_supervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor_module, "_WATCHDOG_LINGER", 0.01)  # it ends soon when idle
    sizes: list[int] = []
    new_watchdog = Supervisor._new_watchdog

    def noting(sup: Supervisor) -> threading.Thread:
        thread = new_watchdog(sup)
        start = thread.start

        def start_noting() -> None:
            sizes.append(threading.stack_size())  # the size it is started with
            start()

        thread.start = start_noting  # type: ignore[method-assign]
        return thread

    monkeypatch.setattr(Supervisor, "_new_watchdog", noting)
    end = threading.Event()

    class EndsOnCue(Service):
        restart = "never"

        def run(self) -> None:
            end.wait(10)

        def check_health(self) -> None:  # a check of its own: its end is the watchdog's
            return None

    ending = EndsOnCue(name="ending")
    sup = make_supervisor(ending, _Idle(name="idle"), thread_stack_size=256 * 1024)
    sup.start()
    assert until(lambda: sup._watchdog is None, timeout=5)  # the first watchdog ended
    with stack_size(128 * 1024):  # as another supervisor's launch holds it, meanwhile
        end.set()  # an end: a change, and a new watchdog to tell
        assert until(lambda: sup._watchdog is not None, timeout=5)
    assert until(lambda: len(sizes) == 2, timeout=5)
    assert sizes == [0, 0]  # the application's size, never a launch's


_CHILD = """
import json, logging, resource, sys
import psutil
from bgservices import Service, Supervisor

logging.disable(logging.CRITICAL)  # 1,000 launch failures would each log a traceback

class Idle(Service):
    def run(self):
        self.wait(60)

size = None if sys.argv[1] == "none" else int(sys.argv[1])
services = [Idle(name=f"s{n}") for n in range(1000)]
room = psutil.Process().memory_info().vms + 2 * 1024**3  # 2 GiB more address space
resource.setrlimit(resource.RLIMIT_AS, (room, room))
sup = Supervisor(services, thread_stack_size=size, stop_at_exit=False)
sup.start()
running = sum(s.state.value == "running" for s in services)
sup.stop()
print(json.dumps(running))
"""


def _running_under_capped_address_space(size: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHILD), size],
        capture_output=True, text=True, timeout=50,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return int(json.loads(done.stdout.splitlines()[-1]))


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and 8 MiB default stacks: Linux")
def test_a_thousand_services_start_under_a_capped_address_space_only_with_small_stacks() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_STACK)
    if soft != resource.RLIM_INFINITY and soft < 4 * 1024**2:
        pytest.skip("default thread stacks are already small here")
    assert _running_under_capped_address_space(str(256 * 1024)) == 1000
    assert _running_under_capped_address_space("none") < 1000
