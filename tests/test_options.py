from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pytest

from bgservices import ConfigError, PeriodicService, Service, option
from bgservices.errors import Problem
from bgservices.options import options_of, validate_options, validate_service_options
from bgservices.services import CacheWarmer, KeepAlive, LogCollector


class Ping(PeriodicService):
    daemon_safe = True
    url: str = option(help="Where to ping.")
    tags: list[int] = []  # noqa: RUF012 (copied per instance)
    token: str | None = option(default=None, secret=True)
    hook: Callable[[], Any] | None = None
    retries: int = option(default=3, ge=0, le=10)
    payload: dict[str, Any] | None = None
    horizon: float = option(
        default=0.0, le=1e12, help="A declared bound replaces the clock's limit."
    )
    _private: int = 0
    shared: ClassVar[int] = 1

    def tick(self) -> None:
        pass


class SlowPing(Ping):
    interval = 60.0  # plain assignment overrides the inherited default


def problems(**kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        Ping(**kwargs)
    return [str(p) for p in info.value.problems]


def test_options_are_public_annotations_in_base_first_order() -> None:
    names = list(options_of(Ping))
    assert names[:5] == ["name", "restart", "max_restarts", "restart_window", "daemon"]
    assert {"interval", "url", "tags", "token", "hook", "retries"} <= set(names)
    assert "_private" not in names and "shared" not in names


def test_subclass_overrides_default_by_plain_assignment_and_keeps_bounds() -> None:
    assert options_of(SlowPing)["interval"].default == 60.0
    assert options_of(SlowPing)["interval"].gt == 0
    assert SlowPing(url="u").interval == 60.0
    assert problems(url="u", interval=0) == ["interval: must be > 0 (got 0)"]


def test_values_are_converted_and_defaults_filled() -> None:
    p = Ping(url="http://x", interval=2, retries=10)
    assert p.interval == 2.0 and isinstance(p.interval, float)
    assert (p.retries, p.restart, p.max_restarts, p.token) == (10, "on-failure", 5, None)


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    found = problems(interval=-1, intervall=3, schedule="hourly", retries=True, tags=[1, "a"])
    assert found == [
        "intervall: unknown option (did you mean interval?)",
        "interval: must be > 0 (got -1)",
        "schedule: must be one of 'fixed_rate', 'fixed_delay' (got 'hourly')",
        "url: required option is missing",
        "tags[1]: expected int, got str",
        "retries: must be an integer (got True)",
    ]


def test_strings_are_not_numbers() -> None:
    assert problems(url="u", interval="5") == ["interval: must be a number (got '5')"]


def test_secret_values_are_never_echoed() -> None:
    found = problems(url="u", token=12345)
    assert found == ["token: must be a string or null (got <redacted>)"]
    assert "12345" not in "".join(found)


def test_callable_options_take_objects_or_import_paths() -> None:
    assert Ping(url="u", hook=print).hook is print
    assert Ping(url="u", hook="os.path:join").hook.__name__ == "join"
    assert problems(url="u", hook="nosuch.module:thing") == [
        "hook: cannot import 'nosuch.module:thing': No module named 'nosuch'"
    ]
    assert problems(url="u", hook="os:sep") == ["hook: 'os:sep' is not callable"]
    assert problems(url="u", hook=3) == ["hook: must be a callable or 'module:attr' (got 3)"]


def test_import_paths_can_be_refused() -> None:
    _values, found = validate_options(Ping, {"url": "u", "hook": "os.path:join"}, resolve=None)
    assert [str(p) for p in found] == [
        "hook: import paths are not allowed here (got 'os.path:join')"
    ]


def test_mutable_defaults_are_not_shared() -> None:
    a, b = Ping(url="u"), Ping(url="u")
    a.tags.append(1)
    assert b.tags == []


def test_name_defaults_to_snake_case_class_name() -> None:
    class HTTPPingService(Service):
        def run(self) -> None:
            pass

    assert HTTPPingService().name == "http_ping_service"
    assert Ping(url="u").name == "ping"
    assert Ping(url="u", name="edge").name == "edge"


def test_daemon_can_demote_but_never_promote() -> None:
    assert Ping(url="u").daemon is True
    assert Ping(url="u", daemon=False).daemon is False

    class Writer(Service):
        def run(self) -> None:
            pass

    assert Writer().daemon is False
    with pytest.raises(ConfigError, match="daemon: Writer is not daemon-safe"):
        Writer(daemon=True)


def test_config_error_lists_one_problem_per_line_and_can_be_prefixed() -> None:
    with pytest.raises(ConfigError) as info:
        Ping(interval=-1)
    err = info.value.prefixed("services.ping")
    assert str(err).splitlines() == [
        "services.ping.interval: must be > 0 (got -1)",
        "services.ping.url: required option is missing",
    ]


# -- numbers that cannot work ------------------------------------------------------------------

LONGEST = threading.TIMEOUT_MAX / 2  # so that interval + jitter is a wait the clock can take
TOO_LONG = threading.TIMEOUT_MAX * 2  # Event.wait(TOO_LONG) raises OverflowError


class Unprintable:
    """A value whose repr, str and comparisons all raise."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    __hash__ = None  # type: ignore[assignment]


@pytest.mark.parametrize("name", ["interval", "initial_delay", "jitter", "restart_window"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.inf, "must be a finite number (got inf)"),
        (math.nan, "must be a finite number (got nan)"),
        (TOO_LONG, f"must be <= {LONGEST:g}, half of threading.TIMEOUT_MAX, so two waits"),
        (LONGEST * 1.001, f"must be <= {LONGEST:g}"),
        (10**400, "is out of range"),
    ],
)
def test_seconds_no_clock_can_wait_for_are_refused(name: str, value: float, message: str) -> None:
    (found,) = problems(url="u", **{name: value})
    assert found.startswith(f"{name}: {message}")


def test_the_longest_wait_options_allow_is_accepted_and_two_added_still_fit() -> None:
    ping = Ping(url="u", interval=LONGEST, jitter=LONGEST)
    assert ping.interval + ping.jitter == threading.TIMEOUT_MAX
    assert threading.Lock().acquire(timeout=ping.interval + ping.jitter)  # a wait it can take
    with pytest.raises(OverflowError):
        threading.Lock().acquire(timeout=TOO_LONG)  # what the rule keeps away


def test_integers_beyond_any_size_are_refused_and_declared_bounds_win() -> None:
    assert problems(url="u", max_restarts=2**64) == [
        f"max_restarts: must be <= {sys.maxsize}, the largest size Python allows "
        "(got 18446744073709551616)"
    ]
    assert Ping(url="u", horizon=1e11).horizon == 1e11  # le=1e12 is its own limit
    assert problems(url="u", horizon=math.inf) == ["horizon: must be a finite number (got inf)"]


def test_a_value_whose_repr_raises_is_shown_safely() -> None:
    assert problems(url="u", interval=Unprintable()) == [
        "interval: must be a number (got <unprintable Unprintable>)"
    ]
    assert problems(url="u", schedule=Unprintable()) == [
        "schedule: must be one of 'fixed_rate', 'fixed_delay' (got <unprintable Unprintable>)"
    ]


def test_cycles_and_deep_nesting_are_refused_with_their_path() -> None:
    looped: dict[str, Any] = {"a": [1]}
    looped["a"].append(looped)
    assert problems(url="u", payload=looped) == [
        "payload.a[1]: contains itself (a reference cycle)"
    ]
    deep: Any = 0
    for _ in range(40):
        deep = [deep]
    (found,) = problems(url="u", payload={"x": deep})
    assert found.startswith("payload.x[0][0]") and found.endswith("nested deeper than 32 levels")
    shared = [1, 2]
    assert Ping(url="u", payload={"a": shared, "b": [shared, shared]}).payload is not None


def test_a_mapping_that_cannot_be_read_is_a_problem() -> None:
    class Broken(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise RuntimeError("broken")

        def __iter__(self) -> Any:
            raise RuntimeError("broken")

        def __len__(self) -> int:
            return 1

    _values, found = validate_options(Ping, Broken())
    assert str(found[0]) == "cannot read the options: RuntimeError('broken')"


# -- rules spanning options: judged whenever what they read is valid ---------------------------


def service_problems(cls: type, **options: Any) -> list[str]:
    _values, found = validate_service_options(cls, options)
    return [str(p) for p in found]


def test_keep_alive_reports_unknown_option_bad_interval_and_bad_url_together() -> None:
    assert service_problems(KeepAlive, colour="red", interval=0, url="ftp://x") == [
        "colour: unknown option",
        "interval: must be > 0 (got 0)",
        "url: must start with http:// or https:// (got 'ftp://x')",
    ]


def test_a_rule_reading_an_invalid_option_is_skipped_not_misleading() -> None:
    assert service_problems(CacheWarmer, loader="nosuch.module:load") == [
        "loader: cannot import 'nosuch.module:load': No module named 'nosuch'"
    ]
    assert service_problems(CacheWarmer, loader=print, keys=[1], fetch=print, interval=-1) == [
        "interval: must be > 0 (got -1)",
        "loader: give either loader, or keys together with fetch",
    ]
    assert service_problems(LogCollector, path=3) == ["path: must be a string or null (got 3)"]
    assert service_problems(LogCollector, max_queue=-1, daemon=True) == [
        "max_queue: must be >= 0 (got -1)",
        "daemon: LogCollector is not daemon-safe, so it cannot run as a daemon "
        "(configuration can make a service safer, never less safe)",
        "path: give a path, a stream, or both",
    ]


class Window(Service):
    low: int = 0
    high: int = 10

    @classmethod
    def check_options(cls, values: Mapping[str, Any]) -> list[Problem]:
        problems = super().check_options(values)
        if values["low"] > values["high"]:
            problems.append(Problem("low", "must not exceed high"))
        return problems

    def run(self) -> None:
        pass


class Labelled(Window):
    label: str = "x"

    @classmethod
    def check_options(cls, values: Mapping[str, Any]) -> list[Problem]:
        problems = super().check_options(values)
        if values.get("label") == "":
            problems.append(Problem("label", "must not be empty"))
        return problems


class Unchecked(Window):
    @classmethod
    def check_options(cls, values: Mapping[str, Any]) -> list[Problem]:
        return []  # drops the inherited rule on purpose: no super()


def test_each_class_rule_in_a_super_chain_is_judged_on_its_own() -> None:
    # the base's rule reads an invalid option: the subclass's own rule still runs
    assert service_problems(Labelled, low="a", label="") == [
        "low: must be an integer (got 'a')",
        "label: must not be empty",
    ]
    # the subclass's rule reads an invalid option: the base's rule (via super()) still runs
    assert service_problems(Labelled, low=5, high=1, label=3) == [
        "label: must be a string (got 3)",
        "low: must not exceed high",
    ]
    # and with everything valid, the chain runs once, as written
    assert service_problems(Labelled, low=5, high=1, label="") == [
        "low: must not exceed high",
        "label: must not be empty",
    ]


def test_an_override_without_super_drops_the_inherited_rule_in_every_case() -> None:
    assert service_problems(Unchecked, low=5, high=1) == []
    assert service_problems(Unchecked, low=5, high=1, restart="sometimes") == [
        "restart: must be one of 'on-failure', 'always', 'never' (got 'sometimes')"
    ]


def test_a_failing_or_malformed_rule_is_a_problem_not_a_crash() -> None:
    class Raising(Window):
        @classmethod
        def check_options(cls, values: Mapping[str, Any]) -> list[Problem]:
            raise RuntimeError("rule bug")

    class Malformed(Window):
        @classmethod
        def check_options(cls, values: Mapping[str, Any]) -> list[Problem]:
            return None  # type: ignore[return-value]

    class Odd(Window):
        @classmethod
        def check_options(cls, values: Mapping[str, Any]) -> list[Problem]:
            return [Problem(Unprintable(), "odd")]  # type: ignore[arg-type]

    assert service_problems(Raising) == ["check_options failed: RuntimeError('rule bug')"]
    assert service_problems(Odd) == ["<unprintable Unprintable>: odd"]
    assert service_problems(Malformed) == [
        "check_options failed: TypeError('check_options must return a list of Problem (got None)')"
    ]


def test_the_constructor_reports_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as info:
        KeepAlive(colour="red", interval=0, url="ftp://x")
    assert [str(p) for p in info.value.problems] == service_problems(
        KeepAlive, colour="red", interval=0, url="ftp://x"
    )
