from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog

from bgservices import ConfigError
from bgservices.services import LogCollector
from bgservices.services._logrender import Renderer, capture
from bgservices.testing import FakeClock

from .._process import App

SCRIPTS = Path(__file__).parent / "scripts"


def _strict(text: str) -> dict[str, Any]:
    """Parse one line as JSON proper: NaN, Infinity and friends are refused."""

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    parsed: dict[str, Any] = json.loads(text, parse_constant=refuse)
    return parsed


def lines(path: Path) -> list[dict[str, Any]]:
    return [_strict(line) for line in path.read_text().splitlines()]


class GatedStream:
    """A stdout whose write() waits for the test to open the gate: holds the writer thread."""

    _saved: Any

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.text: list[str] = []

    def write(self, text: str) -> int:
        if sys._getframe(1).f_globals.get("__name__") != "bgservices.services.logs":
            return int(self._saved.write(text))  # anyone else's output passes through
        self.entered.set()
        assert self.opened.wait(10), "the gate was never opened"
        self.text.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def records(self) -> list[dict[str, Any]]:
        return [_strict(line) for line in "".join(self.text).splitlines()]

    def __enter__(self) -> GatedStream:
        self._saved, sys.stdout = sys.stdout, self  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        self.opened.set()
        sys.stdout = self._saved


@pytest.fixture
def gate() -> GatedStream:
    """Installed with ``with gate, ...`` in the test body (pytest resets sys.stdout before)."""
    return GatedStream()


def _logger(name: str, *, propagate: bool = True) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.setLevel(logging.DEBUG)
    logger.propagate = propagate
    return logger


@pytest.mark.parametrize("mode", ["stop", "return", "exit", "sigterm"])
def test_nothing_accepted_is_lost_on_any_exit(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "app.log"
    app = App.script("log_app.py", mode, str(path))
    if mode == "sigterm":
        app.wait_line("LOGGED", timeout=30)
        app.proc.send_signal(signal.SIGTERM)
    code, _, err = app.finish(timeout=30)
    assert code == 0, err
    records = lines(path)
    app_records = [r for r in records if r.get("logger") == "app"]
    assert len(app_records) == 40_000
    per_thread: dict[str, list[int]] = {}
    for r in app_records:
        _, thread, n = str(r["event"]).split()
        per_thread.setdefault(thread, []).append(int(n))
    assert sorted(per_thread) == [str(t) for t in range(8)]
    assert all(ns == list(range(5000)) for ns in per_thread.values())  # each thread in order
    structured = [r for r in records if r.get("event") == "structured"]
    assert structured == [
        {
            "thread": "main", "payload": {"k": [1, 2]}, "event": "structured", "level": "info",
            "logger": "app.events", "timestamp": structured[0]["timestamp"],
        }
    ]  # fmt: skip


def test_stdlib_and_structlog_records_render_alike(make_supervisor, tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    collector = LogCollector(path=str(path), loggers=["render"])
    logger = _logger("render")
    formatter_chain = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ]
    slog = structlog.wrap_logger(logger, processors=formatter_chain)
    with make_supervisor(collector):
        logger.warning("plain %s", "stdlib")
        slog.warning("structured", user=7)
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
            slog.error("failed too", exc_info=True)
    plain, structured, failed, failed_too = lines(path)
    assert list(plain) == ["timestamp", "level", "logger", "event"]
    assert plain["event"] == "plain stdlib" and plain["level"] == "warning"
    assert structured == {
        "user": 7, "event": "structured", "level": "warning", "logger": "render",
        "timestamp": structured["timestamp"],
    }  # fmt: skip
    assert "ValueError: boom" in str(failed["exception"])
    assert "ValueError: boom" in str(failed_too["exception"]) and "exc_info" not in failed_too
    assert logger.handlers == []  # detached on stop


def test_events_keep_their_name_fields_time_and_exception(make_supervisor, tmp_path) -> None:
    """A record shaped like bgservices' own events: ``event`` and fields as extras."""
    path = tmp_path / "events.log"
    logger = _logger("bgservices.shaped")
    with make_supervisor(LogCollector(path=str(path), loggers=["bgservices"])):
        logger.info(
            "service.running service=db attempt=2",
            extra={"event": "service.running", "service": "db", "attempt": 2, "level": "x"},
        )
        try:
            {}["missing"]
        except KeyError as exc:
            logger.error("service.crashed", exc_info=exc, extra={"event": "service.crashed"})
    running, crashed = [r for r in lines(path) if r["logger"] == "bgservices.shaped"]
    stamp = datetime.fromisoformat(running.pop("timestamp"))
    assert stamp.utcoffset() is not None and stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs(stamp.timestamp() - time.time()) < 60
    assert running == {
        "level": "info", "logger": "bgservices.shaped", "event": "service.running",
        "service": "db", "attempt": 2, "level_": "x",
    }  # fmt: skip
    assert crashed["event"] == "service.crashed" and "KeyError: 'missing'" in crashed["exception"]


def test_the_root_logger_by_default_collects_bgservices_events(make_supervisor, tmp_path) -> None:
    path = tmp_path / "root.log"
    collector = LogCollector(path=str(path))
    assert collector.loggers == [""]
    logger = _logger("bgservices.supervisor")
    with make_supervisor(collector):
        logger.info("supervisor.started services=1", extra={"event": "supervisor.started"})
    assert "supervisor.started" in [r["event"] for r in lines(path)]


def test_a_record_that_cannot_be_rendered_is_a_placeholder_and_loses_nothing(
    make_supervisor, tmp_path: Path, gate: GatedStream
) -> None:
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no str")

        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    selfish: dict[str, Any] = {}
    selfish["me"] = selfish
    path = tmp_path / "hostile.log"
    collector = LogCollector(path=str(path), stream="stdout", loggers=["hostile"])
    logger = _logger("hostile", propagate=False)  # pytest's own capture would raise
    with gate, make_supervisor(collector):
        logger.info("first")
        assert gate.entered.wait(5)  # the writer holds "first": the rest make one batch
        logger.info("before")
        logger.info("value %s", Hostile())
        logger.info(Hostile())
        logger.info("odd fields", extra={"loop": selfish, "nan": float("nan"), "h": Hostile()})
        logger.info("after")
        gate.opened.set()
    written = lines(path)
    assert written == gate.records()
    assert [r["event"] for r in written] == [
        "first", "before", "unrenderable log record", "unrenderable log record", "odd fields",
        "after",
    ]  # fmt: skip
    assert "no str" in written[2]["error"] and "value %s" in written[2]["msg"]
    assert written[4]["nan"] is None and "repr failed" in written[4]["h"]
    assert "{...}" in written[4]["loop"]


def test_arguments_are_captured_as_they_were_at_the_call(make_supervisor, gate) -> None:
    collector = LogCollector(stream="stdout", loggers=["capture"])
    logger = _logger("capture")
    basket = ["apple"]
    with gate, make_supervisor(collector):
        logger.info("first")
        assert gate.entered.wait(5)  # nothing more is rendered until the gate opens
        logger.info("basket %s", basket)
        logger.info("extra", extra={"basket": basket})
        basket.append("pear")
        gate.opened.set()
    assert [(r["event"], r.get("basket")) for r in gate.records()] == [
        ("first", None),
        ("basket ['apple']", None),
        ("extra", ["apple", "pear"]),
    ]  # fmt: skip (the message is frozen at the call; an extra object is the caller's own)


def test_the_fast_path_writes_exactly_what_the_general_path_does() -> None:
    renderer = Renderer("json")
    messages = ["plain", "quote \" and \\ back", "tab\tnew\nline", "é ü 漢字 \u2028", "\x00\x1f",
                "%d%% done", "", "x" * 3000, "{'not': 'json'}"]  # fmt: skip
    times = [0.0, 1.5, 1_800_000_000.0, 1_800_000_000.000001, 1_800_000_000.999999]
    compared = 0
    for n, message in enumerate(messages * 4):
        for level in (logging.DEBUG, logging.INFO, logging.WARNING, 25, logging.CRITICAL):
            args: tuple[Any, ...] = (n,) if "%d" in message else ()
            record = logging.LogRecord(f"app.m{n}", level, __file__, 1, message, args, None)
            record.created = times[n % len(times)] + n
            fast = renderer.accept(record)
            assert type(fast) is bytes  # a plain record: rendered on the fast path at once
            general = renderer.render_general(capture(record))
            assert fast == general and fast.endswith(b"\n") and fast.count(b"\n") == 1
            _strict(fast.decode())
            compared += 1
    assert compared == 180


def test_nested_loggers_write_each_record_once(make_supervisor, tmp_path: Path) -> None:
    path = tmp_path / "nested.log"
    collector = LogCollector(path=str(path), loggers=["", "nest", "nest.inner"])
    _logger("nest.inner.deep").info("deep")
    with make_supervisor(collector):
        _logger("nest.inner.deep").info("once")
        _logger("nest").info("twice?")
        logging.getLogger().warning("root")
    events = [r["event"] for r in lines(path) if r["logger"].startswith(("nest", "root"))]
    assert events.count("once") == 1 and events.count("twice?") == 1 and "root" in events


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_neither_blocks_nor_writes_the_parents_records(
    make_supervisor, tmp_path: Path, gate: GatedStream
) -> None:
    path = tmp_path / "fork.log"
    collector = LogCollector(path=str(path), stream="stdout", loggers=["fork"], max_queue=3)
    logger = _logger("fork")
    with gate, make_supervisor(collector):
        logger.info("parent 0")
        assert gate.entered.wait(5)
        for n in range(1, 4):
            logger.info("parent %d", n)  # the queue is now full: 3 records wait
        pid = os.fork()
        if pid == 0:  # the child: logging must neither block nor queue anything
            try:
                for n in range(10):
                    logger.info("child %d", n)
            finally:
                os._exit(0)
        deadline = time.monotonic() + 10
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        if done[0] == 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        assert done[0] == pid, "the child blocked on the parent's full queue"
        gate.opened.set()
    assert [r["event"] for r in lines(path)] == [f"parent {n}" for n in range(4)]


def test_console_format_and_stream_sink(make_supervisor, capsys) -> None:
    collector = LogCollector(stream="stdout", format="console", loggers=["console"])
    logger = _logger("console")
    with make_supervisor(collector):
        logger.info("hello %s", "there")
    out = capsys.readouterr().out
    assert "hello there" in out and "[info" in out


def test_size_rotation_keeps_every_line(make_supervisor, tmp_path: Path) -> None:
    path = tmp_path / "rot.log"
    collector = LogCollector(path=str(path), max_bytes=4000, backups=50, loggers=["rot"])
    logger = _logger("rot")
    with make_supervisor(collector):
        for n in range(500):
            logger.info("line %d", n)
    files = [f for f in tmp_path.glob("rot.log*") if not f.name.endswith(".lock")]
    assert len(files) > 5 and all(f.stat().st_size <= 4000 for f in files)
    events = [r["event"] for f in files for r in lines(f)]
    assert sorted(events, key=lambda e: int(str(e).split()[1])) == [f"line {n}" for n in range(500)]


def test_several_processes_share_one_rotating_file(tmp_path: Path) -> None:
    """Real processes log into one path concurrently, rotating it: every line arrives whole."""
    path = tmp_path / "shared.log"
    procs, threads, count = 4, 2, 1500
    argv = [sys.executable, str(SCRIPTS / "shared_log_writer.py"), str(path), str(threads)]
    children = [
        subprocess.Popen(
            [*argv, str(count)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in range(procs)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            while (line := child.stdout.readline()) and line.strip() != "READY":
                pass  # lifecycle lines the child may print (bounded by pytest-timeout)
            assert line.strip() == "READY"
        for child in children:  # all at once, as gunicorn workers would
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=45)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(5)
    assert all(child.returncode == 0 for child in children), outputs
    files = [p for p in tmp_path.glob("shared.log*") if not p.name.endswith(".lock")]
    assert len(files) > 10  # it rotated many times, from every process
    assert all(f.stat().st_size <= 20_000 for f in files)
    seen: dict[tuple[int, int, int], int] = {}
    for f in files:
        for record in lines(f):  # every line is whole JSON
            _, pid, thread, n, *_ = str(record["event"]).split()
            key = (int(pid), int(thread), int(n))
            seen[key] = seen.get(key, 0) + 1
    assert len(seen) == procs * threads * count and set(seen.values()) == {1}
    pids = {child.pid for child in children}
    assert {pid for pid, _, _ in seen} == pids


def test_a_full_queue_drops_and_counts_when_asked(make_supervisor, gate: GatedStream) -> None:
    collector = LogCollector(stream="stdout", max_queue=10, on_full="drop", loggers=["drop"])
    logger = _logger("drop")
    with gate, make_supervisor(collector):
        logger.info("held")
        assert gate.entered.wait(5)  # the writer holds one; 10 fit in the queue; 15 dropped
        for n in range(25):
            logger.info("queued %d", n)
        assert (collector.dropped, collector.status()["queue_depth"]) == (15, 10)
        gate.opened.set()
    assert [r["event"] for r in gate.records()] == ["held"] + [f"queued {n}" for n in range(10)]
    assert collector.status()["written"] == 11 and collector.status()["dropped"] == 15


def test_a_drop_degrades_the_collector_for_a_minute_from_when_it_happened(
    make_supervisor, gate: GatedStream
) -> None:
    """Measured from the drop itself, not from the first health check that noticed it."""
    clock = FakeClock()
    collector = LogCollector(stream="stdout", max_queue=2, on_full="drop", loggers=["drops"])
    logger = _logger("drops")

    def dropping() -> bool:
        check = collector.check_health()
        return any(r.startswith("dropping records") for r in (check.reasons if check else ()))

    with gate, make_supervisor(collector, clock=clock):
        logger.info("held")
        assert gate.entered.wait(5)  # the writer holds one; 2 fit in the queue
        for n in range(3):
            logger.info("queued %d", n)
        assert collector.dropped == 1
        clock.advance(61)
        assert not dropping()  # the first look comes after the minute: long forgotten
        logger.info("late")  # the queue is still full: dropped now
        assert collector.dropped == 2 and dropping()
        clock.advance(59)
        assert dropping()
        clock.advance(2)
        assert not dropping()
        gate.opened.set()


def test_a_full_queue_blocks_the_producer_by_default(make_supervisor, gate: GatedStream) -> None:
    collector = LogCollector(stream="stdout", max_queue=5, loggers=["block"])
    logger = _logger("block")
    with gate, make_supervisor(collector):
        logger.info("held")
        assert gate.entered.wait(5)
        for n in range(5):
            logger.info("queued %d", n)
        sixth_in = threading.Event()
        producer = threading.Thread(target=lambda: (logger.info("sixth"), sixth_in.set()))
        producer.start()
        assert not sixth_in.wait(0.1)  # blocked: the queue is full and nothing drains
        gate.opened.set()
        assert sixth_in.wait(5)  # draining made room
        producer.join(5)
    assert collector.written == 7 and collector.dropped == 0


def test_a_sink_is_required_and_the_collector_stops_last() -> None:
    with pytest.raises(ConfigError, match="path: give a path, a stream, or both"):
        LogCollector()
    assert LogCollector(path="x.log").daemon is False
    assert LogCollector.stop_last is True


def test_gunicorn_workers_share_one_rotating_log(tmp_path: Path, unused_port: int) -> None:
    """Real gunicorn workers, each with its own collector on one path: every line arrives."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    path = tmp_path / "served.log"
    env = {**os.environ, "BIND": f"127.0.0.1:{unused_port}", "LOG_PATH": str(path)}
    app = App(
        [str(gunicorn), "-c", str(SCRIPTS / "log_workers.py"), "--chdir", str(SCRIPTS),
         "log_workers:app"],
        env=env,
    )  # fmt: skip
    requests, per_request = 24, 300
    try:
        app.wait_lines("collecting", count=3, timeout=30, stderr=True)

        def ask(request: int) -> str:
            url = f"http://127.0.0.1:{unused_port}/{per_request}?{request}"
            with urllib.request.urlopen(url, timeout=20) as answer:
                return str(answer.read().decode().strip())

        with ThreadPoolExecutor(8) as pool:
            served_by = set(pool.map(ask, range(requests)))
    finally:
        app.proc.send_signal(signal.SIGTERM)
        code, _, err = app.finish(timeout=30)
    assert code == 0, err
    files = [p for p in tmp_path.glob("served.log*") if not p.name.endswith(".lock")]
    assert len(files) > 5 and all(f.stat().st_size <= 20_000 for f in files)
    seen: dict[tuple[int, int], int] = {}
    for f in files:
        for record in lines(f):
            _, request, n, *_ = str(record["event"]).split()
            seen[int(request), int(n)] = seen.get((int(request), int(n)), 0) + 1
    assert len(seen) == requests * per_request and set(seen.values()) == {1}
    assert served_by  # the workers that answered (usually several)


def test_a_producer_blocked_when_the_stop_begins_is_released_and_kept(
    make_supervisor, gate: GatedStream
) -> None:
    collector = LogCollector(stream="stdout", max_queue=2, loggers=["released"])
    logger = _logger("released")
    with gate, make_supervisor(collector) as sup:
        logger.info("held")
        assert gate.entered.wait(5)
        logger.info("queued 0")
        logger.info("queued 1")
        released = threading.Event()
        producer = threading.Thread(target=lambda: (logger.info("blocked"), released.set()))
        producer.start()
        assert not released.wait(0.1)  # the queue is full and the writer is held
        stopper = threading.Thread(target=sup.stop)
        stopper.start()
        assert released.wait(5)  # the stop detached the handler: the producer went on
        gate.opened.set()
        stopper.join(10)
        producer.join(5)
    events = [r["event"] for r in gate.records()]
    assert events == ["held", "queued 0", "queued 1", "blocked"] and collector.dropped == 0


def _readme_collector_example() -> str:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### LogCollector", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_collects_every_service_to_the_end(tmp_path: Path) -> None:
    """Every other service's lifecycle, teardown included, the supervisor's start and stop,
    the services' own ``self.log`` lines under their module's logger, the application's."""
    done = subprocess.run(
        [sys.executable, "-c", _readme_collector_example()],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # the library printed nothing
    records = lines(tmp_path / "app.log")
    events = [(r.get("service"), r["event"]) for r in records]
    assert (None, "this line reaches app.log, whatever happens next") in events
    assert (None, "supervisor.started") in events and (None, "supervisor.stopped") in events
    for service in ("memory_monitor", "orders"):
        for event in ("service.starting", "service.running", "service.stopping"):
            assert (service, event) in events, (service, event)
        assert (service, "service.stopped") in events  # after its teardown
    own = [r for r in records if r["event"] == "orders.flushed"]
    assert own and own[0]["logger"] == "__main__" and own[0]["service"] == "orders"
    assert events.index(("orders", "orders.flushed")) < events.index(("orders", "service.stopped"))
