"""Hostile exit paths, each in its own interpreter: ``python hostile_app.py MODE OUTDIR``.

It prints READY once its supervisor runs (where that applies). The critical service's
teardown writes OUTDIR/teardown. Each MODE is one way the first release broke its promise.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from pathlib import Path

from bgservices import Service, Supervisor

logging.basicConfig(
    level=logging.DEBUG, stream=sys.stdout, format="%(process)d %(name)s %(message)s"
)
mode, out = sys.argv[1], Path(sys.argv[2])
holder: dict[str, Supervisor] = {}


def say(line: str) -> None:
    """One line in one write: print() writes the text and the newline separately, and a log
    line from another thread could land between them."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


child_done = threading.Event()


class Writer(Service):
    """Critical: waits for a stop; its teardown writes OUTDIR/teardown."""

    def run(self) -> None:
        while not self.wait(30):
            pass

    def teardown(self) -> None:
        if mode == "signal-during-stop":
            say("TEARDOWN")
            time.sleep(1.0)  # long enough for a SIGTERM to arrive during the join
        if mode == "executor-at-exit":
            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(2) as pool:
                squares = list(pool.map(lambda n: n * n, range(4)))
            (out / "teardown").write_text(f"flushed {squares}")
            return
        (out / "teardown").write_text("flushed")


class StopsItself(Service):
    """Calls stop() from its own thread, then its teardown never returns."""

    def run(self) -> None:
        holder["sup"].stop()
        say("STOPPED ITSELF")

    def teardown(self) -> None:
        while True:
            time.sleep(0.05)


class Forker(Service):
    """Forks inside run(); the child simply returns into the service thread."""

    restart = "always"

    def run(self) -> None:
        pid = os.fork()
        if pid == 0:
            return  # the child must end here, never restart anything
        _, status = os.waitpid(pid, 0)
        say(f"CHILD {pid} EXIT {os.waitstatus_to_exitcode(status)}")
        child_done.set()
        while not self.wait(30):
            pass


def named(name: str) -> Writer:
    class Named(Writer):
        def teardown(self) -> None:
            say(f"TEARDOWN {name}")

    return Named(name=name)


if mode == "signal-during-stop":
    sup = Supervisor([Writer()], shutdown_timeout=5.0)
    sup.install_signal_handlers()
    sup.start()
    say("READY")
    sup.stop()
    say("STOP RETURNED")  # not reached: the deferred SIGTERM is raised
elif mode == "lock-held-by-main":
    import structlog  # its default logger: a non-reentrant lock around stdout

    app_lock = threading.Lock()  # the application's own lock, which its listener takes too
    seen: list[str] = []

    def listener(event: object) -> None:
        with app_lock:
            seen.append(str(event))

    sup = Supervisor([Writer()], shutdown_timeout=5.0)
    sup.add_listener(listener)
    sup.install_signal_handlers()
    sup.start()
    say("READY")
    log = structlog.get_logger("app")
    while True:
        with app_lock:  # where the signal finds the main thread, nearly always
            log.info("busy", n=len(seen))
            time.sleep(0.01)
elif mode == "executor-at-exit":
    Supervisor([Writer()]).start()
    import concurrent.futures.thread  # noqa: F401 (its own exit hook registered after ours)
elif mode == "order-at-exit":
    for index in range(8):
        Supervisor([named(f"s{index}")]).start()
elif mode == "start-in-atexit":

    def late_start() -> None:
        try:
            Supervisor([Writer()]).start()
        except RuntimeError as exc:
            say(f"REFUSED {exc}")

    atexit.register(late_start)
elif mode == "start-from-daemon-after-main":

    def after_main() -> None:
        threading.main_thread().join()
        try:
            Supervisor([Writer()]).start()
        except RuntimeError as exc:
            say(f"REFUSED {exc}")
        done.set()

    done = threading.Event()
    threading.Thread(target=after_main, daemon=True).start()
    threading.Thread(target=lambda: done.wait(5), daemon=False).start()  # keeps the exit alive
elif mode == "stops-itself":
    holder["sup"] = Supervisor([Writer(), StopsItself()], shutdown_timeout=1.0)
    holder["sup"].start()
elif mode == "stop-then-return":

    class Stubborn(Service):
        def run(self) -> None:
            while True:
                time.sleep(0.05)

    sup = Supervisor([Writer(), Stubborn()], shutdown_timeout=1.0)
    sup.start()
    report = sup.stop()
    say(f"STRAGGLERS {list(report.stragglers)}")
elif mode == "fork-in-run":
    import warnings

    warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() of a threaded process
    Supervisor([Forker()], shutdown_timeout=2.0).start()
    child_done.wait(10)
elif mode == "no-threads":
    import resource

    class Idle(Writer):
        pass

    sup = Supervisor([Idle(name="a"), Idle(name="b")], shutdown_timeout=1.0)
    threading.stack_size(512 * 1024 * 1024)  # every new thread wants 512 MiB of address space
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as statm:
        used = int(statm.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + 256 * 1024 * 1024, hard))
    sup.start()  # neither thread can be started
    states = {s.name: (s.state.value, (s.last_error or {}).get("message")) for s in sup}
    say(f"STATES {states}")
    report = sup.stop()
    say(f"STOPPED clean={report.clean}")
elif mode == "listener-blocks-at-exit":

    def blocker(event: object) -> None:
        if getattr(event, "event", None) in ("supervisor.exit", "service.stopping"):
            threading.Event().wait()  # never returns

    sup = Supervisor([Writer()], shutdown_timeout=1.0)
    sup.add_listener(blocker)
    sup.start()
    say("READY")  # then the main thread returns: the exit hook stops the supervisor
else:
    raise SystemExit(f"unknown mode {mode}")
