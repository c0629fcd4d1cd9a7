from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from bgservices import ConfigError, PeriodicService, Service, option
from bgservices.options import options_of, validate_options


class Ping(PeriodicService):
    daemon_safe = True
    url: str = option(help="Where to ping.")
    tags: list[int] = []  # noqa: RUF012 (copied per instance)
    token: str | None = option(None, secret=True)
    hook: Callable[[], Any] | None = None
    retries: int = option(3, ge=0, le=10)
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
