from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path

import pytest
import structlog

from bgservices import ConfigError
from bgservices.services import LogCollector

from .._process import App


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


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
            "thread": "main", "payload": {"k": [1, 2]}, "event": "structured",
            "level": "info", "timestamp": structured[0]["timestamp"],
        }
    ]  # fmt: skip


def test_stdlib_and_structlog_records_render_alike(make_supervisor, tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    collector = LogCollector(path=str(path), loggers=["render"])
    logger = logging.getLogger("render")
    logger.setLevel(logging.INFO)
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
    plain, structured, failed = lines(path)
    assert set(plain) == {"event", "level", "logger", "timestamp"}
    assert plain["event"] == "plain stdlib" and plain["level"] == "warning"
    assert structured == {"user": 7, "event": "structured", "level": "warning", "logger": "render"}
    assert "ValueError: boom" in str(failed["exception"])
    assert logger.handlers == []  # detached on stop


def test_console_format_and_stream_sink(make_supervisor, capsys) -> None:
    collector = LogCollector(stream="stdout", format="console", loggers=["console"])
    logger = logging.getLogger("console")
    logger.setLevel(logging.INFO)
    with make_supervisor(collector):
        logger.info("hello %s", "there")
    out = capsys.readouterr().out
    assert "hello there" in out and "[info" in out


def test_size_rotation_keeps_every_line(make_supervisor, tmp_path: Path) -> None:
    path = tmp_path / "rot.log"
    collector = LogCollector(path=str(path), max_bytes=4000, backups=50, loggers=["rot"])
    logger = logging.getLogger("rot")
    logger.setLevel(logging.INFO)
    with make_supervisor(collector):
        for n in range(500):
            logger.info("line %d", n)
    files = sorted(tmp_path.glob("rot.log*"))
    assert len(files) > 5 and all(f.stat().st_size <= 4000 for f in files)
    events = [r["event"] for f in files for r in lines(f)]
    assert sorted(events, key=lambda e: int(str(e).split()[1])) == [f"line {n}" for n in range(500)]


def test_a_full_queue_drops_and_counts_when_asked(make_supervisor, tmp_path: Path) -> None:
    path = tmp_path / "drop.log"
    collector = LogCollector(path=str(path), max_queue=10, on_full="drop", loggers=["drop"])
    record = logging.LogRecord("drop", logging.INFO, __file__, 1, "queued %d", (0,), None)
    for _ in range(25):  # nothing drains before start: the first 10 fit, 15 are dropped
        collector._accept(record)
    assert (collector.dropped, collector.status()["queue_depth"]) == (15, 10)
    with make_supervisor(collector):
        pass
    assert len(lines(path)) == 10
    assert collector.status()["written"] == 10 and collector.status()["dropped"] == 15


def test_a_full_queue_blocks_the_producer_by_default(make_supervisor, tmp_path: Path) -> None:
    collector = LogCollector(path=str(tmp_path / "b.log"), max_queue=5, loggers=["block"])
    record = logging.LogRecord("block", logging.INFO, __file__, 1, "r", (), None)
    for _ in range(5):
        collector._accept(record)
    sixth_in = threading.Event()
    producer = threading.Thread(target=lambda: (collector._accept(record), sixth_in.set()))
    producer.start()
    assert not sixth_in.wait(0.1)  # blocked: the queue is full and nothing drains yet
    with make_supervisor(collector):
        assert sixth_in.wait(5)  # draining made room
    producer.join(5)
    assert collector.written == 6 and collector.dropped == 0


def test_a_sink_is_required() -> None:
    with pytest.raises(ConfigError, match="path: give a path, a stream, or both"):
        LogCollector()
    assert LogCollector(path="x.log").daemon is False
