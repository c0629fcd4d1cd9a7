"""The ``bgservices`` command: run a configuration, check it, list types, or run the demo.

Unlike the library, the command line configures logging (structlog, routed through stdlib
logging so a ``LogCollector`` sees everything) and handles SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any, TextIO

import structlog

from .config import from_config, load_config, validate_config
from .errors import ConfigError
from .options import MISSING, options_of
from .registry import registered
from .supervisor import Supervisor

__all__ = ["configure_logging", "main", "render_status", "render_types_markdown"]


def configure_logging(
    fmt: str = "auto", stream: TextIO | None = None, level: int = logging.INFO
) -> None:
    """structlog for humans on a terminal, JSON lines otherwise, through stdlib logging."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if fmt == "console" else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setLevel(level)
    extra = [] if fmt == "console" else [structlog.processors.format_exc_info]
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *extra,
                renderer,
            ],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.INFO)


def render_status(status: dict[str, dict[str, Any]]) -> str:
    """A compact table of every service's status."""
    rows = [("service", "type", "kind", "state", "restarts", "uptime", "detail")]
    for name, st in status.items():
        uptime = st.get("uptime")
        rows.append(
            (
                name,
                str(st["type"]).rpartition(":")[2],
                "daemon" if st["daemon"] else "critical",
                st["state"],
                str(st["restarts"]),
                f"{uptime:.1f}s" if uptime is not None else "-",
                _detail(st),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        (
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        ).rstrip()
        for row in rows
    )


def _detail(st: dict[str, Any]) -> str:
    parts = []
    if "written" in st:
        parts.append(f"written={st['written']} dropped={st['dropped']}")
    if st.get("latest"):
        parts.append(f"rss={st['latest']['rss'] / 2**20:.1f}MiB")
    if "keys_warmed" in st:
        parts.append(f"runs={st['runs']} keys={st['keys_warmed']}")
    if "health" in st:
        p95 = st.get("latency_p95")
        parts.append(f"health={st['health']}" + (f" p95={p95 * 1000:.1f}ms" if p95 else ""))
    for key in ("accepted", "committed"):
        if key in st:
            parts.append(f"{key}={st[key]}")
    if not parts and "ticks" in st:
        parts.append(f"ticks={st['ticks']} errors={st['errors']}")
    if st.get("last_error"):
        parts.append(f"last_error={st['last_error']['type']}")
    return " ".join(parts)


def run_supervisor(
    sup: Supervisor, duration: float | None, status_every: float, out: TextIO
) -> int:
    """``sup.run()`` with a status table every *status_every* seconds and an optional end."""
    done = threading.Event()

    def watch() -> None:
        deadline = None if duration is None else time.monotonic() + duration
        while True:
            timeouts = [
                t for t in (status_every or None, deadline and deadline - time.monotonic()) if t
            ]
            if done.wait(min(timeouts) if timeouts else None):
                return
            if deadline is not None and time.monotonic() >= deadline:
                sup.request_stop()
                return
            if status_every:
                print(render_status(sup.status()) + "\n", file=out, flush=True)

    watcher = threading.Thread(target=watch, name="bgservices-cli:status", daemon=True)
    watcher.start()
    try:
        return sup.run()
    finally:
        done.set()


def _problems_to_stderr(err: ConfigError, source: str) -> None:
    print(f"{source}: {len(err.problems)} problem(s):", file=sys.stderr)
    for problem in err.problems:
        print(f"  {problem}", file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        sup = from_config(load_config(args.config))
    except ConfigError as err:
        _problems_to_stderr(err, args.config)
        return 1
    configure_logging(args.log_format)
    code = run_supervisor(sup, args.duration, args.status_every, sys.stdout)
    print(render_status(sup.status()), flush=True)
    return code


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        problems, _, services = validate_config(load_config(args.config))
    except ConfigError as err:
        problems, services = list(err.problems), []
    if problems:
        _problems_to_stderr(ConfigError(problems), args.config)
        return 1
    print(f"{args.config}: valid, {len(services)} service(s)")
    for name, cls, _ in services:
        kind = "daemon-safe" if cls.daemon_safe else "critical"
        print(f"  {name}: {cls.type_name or cls.__qualname__} ({kind})")
    return 0


def render_types_markdown() -> str:
    """The configuration reference (docs/configuration.md), generated from the declarations."""
    from .service import Service
    from .supervisor import SupervisorSettings

    def table(specs: Any) -> list[str]:
        rows = ["| option | type | default | constraints | description |", "|---|---|---|---|---|"]
        for spec in specs:
            default = "**required**" if spec.default is MISSING else f"`{spec.default!r}`"
            bounds = ", ".join(spec.bounds())
            kind = spec.type_name.replace(" | ", " or ")
            rows.append(f"| `{spec.name}` | {kind} | {default} | {bounds} | {spec.help} |")
        return rows

    common = options_of(Service)
    lines = [
        "# Configuration reference",
        "",
        "Generated by `bgservices types --markdown` from the option declarations; a test fails",
        "if this file and the code disagree. See the README for the shape of the dict.",
        "",
        "## `supervisor`",
        "",
        *table(options_of(SupervisorSettings).values()),
        "",
        "## Options every service accepts",
        "",
        "The service's name is its key under `services`, so `name` is not given there.",
        "",
        *table(spec for spec in common.values() if spec.name != "name"),
    ]
    for type_name, cls in registered().items():
        if not cls.__module__.startswith("bgservices."):
            continue
        kind = "daemon-safe" if cls.daemon_safe else "critical (not daemon-safe)"
        own = [spec for name, spec in options_of(cls).items() if name not in common]
        doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("``", "`")
        where = f"`{cls.__module__}.{cls.__qualname__}`, {kind}."
        lines += ["", f"## `{type_name}`", "", where, "", " ".join(doc.split()), "", *table(own)]
    return "\n".join(lines) + "\n"


def _cmd_types(args: argparse.Namespace) -> int:
    if args.markdown:
        print(render_types_markdown(), end="")
        return 0
    for type_name, cls in registered().items():
        kind = "daemon-safe" if cls.daemon_safe else "critical"
        print(f"{type_name}  ({kind}; {cls.__module__}:{cls.__qualname__})")
        for spec in options_of(cls).values():
            default = "required" if spec.default is MISSING else f"default {spec.default!r}"
            bounds = f", {' and '.join(spec.bounds())}" if spec.bounds() else ""
            print(f"    {spec.name}: {spec.type_name} ({default}{bounds})  {spec.help}".rstrip())
        print()
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(args.duration, args.status_every, args.log_format)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bgservices", description="Run background services from a configuration file."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add_running_options(
        p: argparse.ArgumentParser, duration: float | None, every: float
    ) -> None:
        p.add_argument(
            "--duration", type=_positive, default=duration, metavar="S",
            help="stop after S seconds (default: %(default)s)",
        )  # fmt: skip
        p.add_argument(
            "--status-every", type=_non_negative, default=every, metavar="S",
            help="print a status table every S seconds, 0 never (default: %(default)s)",
        )  # fmt: skip
        p.add_argument(
            "--log-format", choices=["auto", "console", "json"], default="auto",
            help="auto: console on a terminal, JSON lines otherwise",
        )  # fmt: skip

    run = commands.add_parser("run", help="run the services of a .toml or .json file")
    run.add_argument("config")
    add_running_options(run, None, 10.0)
    run.set_defaults(handler=_cmd_run)

    check = commands.add_parser("check", help="validate a file and print every problem")
    check.add_argument("config")
    check.set_defaults(handler=_cmd_check)

    types = commands.add_parser("types", help="list the registered service types and options")
    types.add_argument("--markdown", action="store_true", help="the configuration reference")
    types.set_defaults(handler=_cmd_types)

    demo = commands.add_parser("demo", help="run every built-in service for a few seconds")
    add_running_options(demo, 10.0, 1.0)
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code
