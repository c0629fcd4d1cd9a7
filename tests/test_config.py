from __future__ import annotations

import importlib
import json
import math
import sys
import textwrap
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgservices import (
    ConfigError,
    PeriodicService,
    Service,
    Supervisor,
    from_config,
    load_config,
    register,
    registry,
)
from bgservices.config import validate_config
from bgservices.options import options_of
from bgservices.services import CacheWarmer, KeepAlive, LogCollector, MemoryMonitor

from .sample_services import Heartbeat, load_all

EXAMPLE = {
    "version": 1,
    "supervisor": {"shutdown_timeout": 10, "failure_policy": "isolate"},
    "services": {
        "logs": {"type": "log_collector", "path": "app.log"},
        "memory": {"type": "memory_monitor", "interval": 5, "rss_limit_mb": 512},
        "warm": {
            "type": "cache_warmer",
            "interval": 60,
            "loader": "tests.sample_services:load_all",
        },
        "ping": {"type": "keep_alive", "url": "http://127.0.0.1:8000/health", "interval": 30},
        "mine": {"type": "tests.sample_services:Heartbeat", "interval": 1, "restart": "always"},
    },
}


def problems(config: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        from_config(config, **kwargs)
    return [str(p) for p in info.value.problems]


def test_the_documented_example_builds_in_order_with_its_options() -> None:
    sup = from_config(EXAMPLE)
    assert [s.name for s in sup] == ["logs", "memory", "warm", "ping", "mine"]
    logs, memory, warm, ping, mine = sup
    assert isinstance(logs, LogCollector) and logs.path == "app.log" and not logs.daemon
    assert isinstance(memory, MemoryMonitor) and memory.rss_limit_mb == 512 and memory.daemon
    assert isinstance(warm, CacheWarmer) and warm.loader is load_all
    assert isinstance(ping, KeepAlive) and ping.interval == 30.0
    assert isinstance(mine, Heartbeat) and mine.restart == "always"
    assert (sup.shutdown_timeout, sup.failure_policy) == (10.0, "isolate")
    assert not sup.running  # nothing starts during configuration


def test_every_problem_is_reported_with_its_path() -> None:
    found = problems(
        {
            "version": 2,
            "extra": True,
            "supervisor": {"shutdown_timeout": -1, "failure_polcy": "shutdown"},
            "services": {
                "ping": {"type": "keep_alive", "interval": -1},
                "memory": {"type": "memory_monitor", "rss_limit": 5, "percent_limit": "high"},
                "typo": {"type": "memory_monitr"},
                "gone": {"type": "nosuch.module:Thing"},
                "notsvc": {"type": "tests.sample_services:NOT_A_SERVICE"},
                "logs": {"type": "log_collector", "path": "x.log", "daemon": True},
                "named": {"type": "memory_monitor", "name": "other"},
                "bare": {"interval": 3},
                "flat": 7,
            },
        }
    )
    assert found == [
        "extra: unknown key",
        "version: unsupported version 2 (this bgservices reads 1)",
        "supervisor.failure_polcy: unknown option (did you mean failure_policy?)",
        "supervisor.shutdown_timeout: must be > 0 (got -1)",
        "services.ping.interval: must be > 0 (got -1)",
        "services.ping.url: required option is missing",
        "services.memory.rss_limit: unknown option (did you mean rss_limit_mb?)",
        "services.memory.percent_limit: must be a number or null (got 'high')",
        "services.typo.type: unknown service type 'memory_monitr' (did you mean memory_monitor?)",
        "services.gone.type: cannot import 'nosuch.module:Thing': No module named 'nosuch'",
        "services.notsvc.type: 'tests.sample_services:NOT_A_SERVICE' is not a Service subclass",
        "services.logs.daemon: LogCollector is not daemon-safe, so it cannot run as a daemon "
        "(configuration can make a service safer, never less safe)",
        "services.named.name: not an option here: the service's name is its key",
        "services.bare.type: required: a registered type name or 'module:Class'",
        "services.flat: must be a mapping (got int)",
    ]


def test_str_of_the_error_lists_one_problem_per_line() -> None:
    with pytest.raises(ConfigError) as info:
        from_config(
            {"services": {"ping": {"type": "keep_alive", "url": "http://x", "interval": 0}}}
        )
    assert str(info.value) == "services.ping.interval: must be > 0 (got 0)"


def test_cross_option_rules_run_before_anything_is_built() -> None:
    assert problems({"services": {"w": {"type": "cache_warmer", "keys": [1]}}}) == [
        "services.w.fetch: keys and fetch go together"
    ]


def test_every_problem_of_a_service_is_reported_at_once_rules_included() -> None:
    keep_alive = {"type": "keep_alive", "colour": "red", "interval": 0, "url": "ftp://x"}
    assert problems({"services": {"ping": keep_alive}}) == [
        "services.ping.colour: unknown option",
        "services.ping.interval: must be > 0 (got 0)",
        "services.ping.url: must start with http:// or https:// (got 'ftp://x')",
    ]
    warmer = {"type": "cache_warmer", "loader": "nosuch.module:load"}
    assert problems({"services": {"w": warmer}}) == [
        "services.w.loader: cannot import 'nosuch.module:load': No module named 'nosuch'"
    ]
    logs = {"type": "log_collector", "max_queue": -1}
    assert problems({"services": {"logs": logs}}) == [
        "services.logs.max_queue: must be >= 0 (got -1)",
        "services.logs.path: give a path, a stream, or both",
    ]


def test_config_can_demote_a_daemon_safe_service_but_never_promote() -> None:
    sup = from_config({"services": {"m": {"type": "memory_monitor", "daemon": False}}})
    assert sup["m"].daemon is False


NO_SERVICES = (
    "services: no services configured: add at least one, each with a type "
    "(a registered name or 'module:Class')"
)


def test_version_defaults_to_one_and_the_supervisor_section_is_optional() -> None:
    sup = from_config({"services": {"m": {"type": "memory_monitor"}}})
    assert [s.name for s in sup] == ["m"] and sup.shutdown_timeout == 10.0
    assert problems({"version": "1", "services": {"m": {"type": "memory_monitor"}}}) == [
        "version: unsupported version '1' (this bgservices reads 1)"
    ]
    assert problems([]) == ["configuration must be a mapping (got list)"]
    assert problems({"services": []}) == ["services: must be a mapping (got list)"]


@pytest.mark.parametrize("config", [{}, {"services": {}}, {"version": 1, "supervisor": {}}])
def test_no_services_is_an_error_so_run_never_waits_doing_nothing(config: Any) -> None:
    assert problems(config) == [NO_SERVICES]
    assert [str(p) for p in validate_config(config)[0]] == [NO_SERVICES]  # what check says
    assert len(Supervisor([])) == 0  # in code an empty supervisor stays allowed


# -- values that cannot work, hostile values ----------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("supervisor", "shutdown_timeout", math.inf, "must be a finite number (got inf)"),
        ("supervisor", "daemon_grace", math.nan, "must be a finite number (got nan)"),
        ("supervisor", "shutdown_timeout", 1e10, "must be <= 4.61169e+09"),
        ("service", "restart_window", 1e10, "must be <= 4.61169e+09"),
        ("service", "interval", math.inf, "must be a finite number (got inf)"),
        ("service", "initial_delay", 1e300, "must be <= 4.61169e+09"),
        ("service", "jitter", math.nan, "must be a finite number (got nan)"),
        ("service", "max_restarts", 2**64, "must be <= 9223372036854775807"),
    ],
)
def test_numbers_no_clock_can_wait_for_are_refused_by_check_and_run_alike(
    section: str, key: str, value: float, message: str
) -> None:
    config: dict[str, Any] = {"services": {"m": {"type": "memory_monitor"}}}
    if section == "supervisor":
        config["supervisor"] = {key: value}
        where = f"supervisor.{key}"
    else:
        config["services"]["m"][key] = value
        where = f"services.m.{key}"
    (found,) = problems(config)
    assert found.startswith(f"{where}: {message}")
    assert [str(p) for p in validate_config(config)[0]] == [found]


def test_self_referencing_and_deeply_nested_configuration_is_a_config_error() -> None:
    config: dict[str, Any] = {"services": {"m": {"type": "memory_monitor"}}}
    config["services"]["m"]["extra"] = config  # unknown, so never walked
    config["supervisor"] = config
    config["services"]["w"] = {"type": "cache_warmer", "keys": [1, config], "fetch": print}
    deep: Any = 1
    for _ in range(100):
        deep = {"d": deep}
    config["services"]["k"] = {"type": "keep_alive", "url": "http://x", "headers": deep}
    assert problems(config) == [
        "supervisor.services: unknown option",
        "supervisor.supervisor: unknown option",
        "services.m.extra: unknown option",
        "services.w.keys[1].services.m.extra: contains itself (a reference cycle)",
        "services.k.headers.d.d.d.d.d.d.d.d...: nested deeper than 32 levels",
    ]


def test_deeply_nested_files_are_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "deep.toml").write_text("a = " + "[" * 100_000 + "]" * 100_000)
    for name in ("deep.json", "deep.toml"):
        with pytest.raises(ConfigError, match="nested too deeply to read"):
            load_config(tmp_path / name)
    (tmp_path / "long.json").write_text('{"version": ' + "9" * 5000 + "}")
    with pytest.raises(ConfigError, match="cannot parse: Exceeds the limit"):
        load_config(tmp_path / "long.json")


class Hostile:
    """Its repr, str, equality and truth all raise."""

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    def __hash__(self) -> int:
        return 7

    def __bool__(self) -> bool:
        raise RuntimeError("no bool")


class HostileKey(str):
    """A str key whose comparisons, str and repr raise (its hash works: it is a dict key)."""

    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HostileKey):
            return self is other
        raise RuntimeError("no eq")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


class BrokenMapping(Mapping[Any, Any]):
    def __getitem__(self, key: Any) -> Any:
        raise RuntimeError("no item")

    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("no iteration")

    def __len__(self) -> int:
        return 1


def test_hostile_keys_and_values_give_config_errors_not_crashes() -> None:
    assert problems(
        {
            HostileKey("services"): {
                HostileKey("m"): {HostileKey("type"): "memory_monitor", "interval": Hostile()},
                Hostile(): {"type": "memory_monitor"},
                "b": BrokenMapping(),
            },
            "supervisor": {"shutdown_timeout": Hostile(), 3: 1},
        }
    ) == [
        "supervisor.3: keys must be strings (got int)",
        "supervisor.shutdown_timeout: must be a number (got <unprintable Hostile>)",
        "services.<unprintable Hostile>: keys must be strings (got Hostile)",
        "services.m.interval: must be a number (got <unprintable Hostile>)",
        "services.b: cannot be read: RuntimeError('no iteration')",
    ]
    assert problems(BrokenMapping()) == ["cannot be read: RuntimeError('no iteration')"]


def test_allow_imports_false_refuses_every_import_path() -> None:
    assert problems(EXAMPLE, allow_imports=False) == [
        "services.warm.loader: import paths are not allowed here (got "
        "'tests.sample_services:load_all')",
        "services.mine.type: import paths are not allowed here (got "
        "'tests.sample_services:Heartbeat')",
    ]
    sup = from_config({"services": {"w": {"type": "cache_warmer", "loader": load_all}}})
    assert sup["w"].loader is load_all  # objects are fine: they come from code


def test_load_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "services.toml"
    toml.write_text(
        textwrap.dedent(
            """
            version = 1
            [supervisor]
            shutdown_timeout = 5
            [services.memory]
            type = "memory_monitor"
            interval = 2
            """
        )
    )
    assert load_config(toml) == {
        "version": 1,
        "supervisor": {"shutdown_timeout": 5},
        "services": {"memory": {"type": "memory_monitor", "interval": 2}},
    }
    as_json = tmp_path / "services.json"
    as_json.write_text(json.dumps(EXAMPLE))
    assert load_config(as_json) == EXAMPLE


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("c.yaml", "a: 1", "unsupported file type '.yaml' (use .toml or .json)"),
        ("c.toml", "[services\n", "invalid TOML: Expected ']' at the end of a table declaration (at line 1, column 10)"),  # noqa: E501
        ("c.json", '{"services": {,}}', "invalid JSON: Expecting property name enclosed in double quotes (at line 1, column 15)"),  # noqa: E501
        ("c.json", "[1]", "must hold an object (got list)"),
    ],
)  # fmt: skip
def test_bad_files_give_one_clear_problem(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [str(p) for p in info.value.problems] == [f"{path}: {message}"]


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing.toml: cannot read: \[Errno 2\]"):
        load_config(tmp_path / "missing.toml")


def test_register_a_type_by_decorator() -> None:
    @register("test_beacon")
    class Beacon(PeriodicService):
        def tick(self) -> None:
            pass

    try:
        sup = from_config({"services": {"b": {"type": "test_beacon", "interval": 3}}})
        assert type(sup["b"]) is Beacon and Beacon.type_name == "test_beacon"
        assert sup["b"].status()["type"] == "test_beacon"
        with pytest.raises(ValueError, match="already registered"):
            register("test_beacon")(Heartbeat)
        with pytest.raises(TypeError, match="needs a Service subclass"):
            register("test_other")(int)  # type: ignore[type-var]
    finally:
        registry._types.pop("test_beacon")


def test_register_a_type_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "beaconplugin.py").write_text(
        "from bgservices import Service\n\n"
        "class PluginService(Service):\n"
        "    def run(self):\n"
        "        pass\n"
    )
    dist = tmp_path / "beaconplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: beaconplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[bgservices.services]\nplugin_service = beaconplugin:PluginService\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setattr(registry, "_loaded", False)
    try:
        cls = registry.lookup("plugin_service")
        assert cls is not None and cls.__name__ == "PluginService"
        assert "plugin_service" in registry.registered()
    finally:
        registry._types.pop("plugin_service", None)
        sys.modules.pop("beaconplugin", None)


def test_builtins_are_registered() -> None:
    assert {"memory_monitor", "cache_warmer", "keep_alive", "log_collector"} <= set(
        registry.registered()
    )


# -- property: nothing but ConfigError escapes, whatever the dict -----------------------------

_armed = False


@contextmanager
def armed() -> Iterator[None]:
    """Hostile values misbehave only inside: hypothesis itself may build, compare and repr them."""
    global _armed
    _armed = True
    try:
        yield
    finally:
        _armed = False


class Trap:
    """Inside ``armed()``, its repr, str, equality and truth raise."""

    def _fail(self) -> None:
        if _armed:
            raise RuntimeError("trap")

    def __repr__(self) -> str:
        self._fail()
        return "Trap()"

    def __str__(self) -> str:
        self._fail()
        return "trap"

    def __eq__(self, other: object) -> bool:
        self._fail()
        return self is other

    def __hash__(self) -> int:
        return 7

    def __bool__(self) -> bool:
        self._fail()
        return True


class TrapKey(str):
    """A str key whose equality, str and repr raise inside ``armed()``."""

    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        if _armed:
            raise RuntimeError("trap")
        return str.__eq__(self, other)

    def __repr__(self) -> str:
        if _armed:
            raise RuntimeError("trap")
        return f"TrapKey({str.__repr__(self)})"

    __str__ = __repr__


class TrapMapping(Mapping[Any, Any]):
    def __getitem__(self, key: Any) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        if _armed:
            raise RuntimeError("trap")
        return iter(())

    def __len__(self) -> int:
        return 0


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@st.composite
def knotted(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> Any:
    """A value from *base* with one of its containers made to hold another (maybe itself)."""
    value = draw(base)
    containers: list[Any] = []
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, (dict, list)) and all(item is not c for c in containers):
            containers.append(item)
            todo.extend(item.values() if isinstance(item, dict) else item)
    if containers:
        host, target = draw(st.sampled_from(containers)), draw(st.sampled_from(containers))
        if isinstance(host, dict):
            host[draw(st.sampled_from(["services", "supervisor", "interval", "x"]))] = target
        else:
            host.append(target)
    return value


option_names = sorted(
    {
        name
        for cls in (MemoryMonitor, CacheWarmer, KeepAlive, LogCollector)
        for name in options_of(cls)
    }
    | {"type", "daemon", "extra"}
)
scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["memory_monitor", "keep_alive", "cache_warmer", "log_collector",
                       "http://127.0.0.1:1/", "a.b:C", "tests.sample_services:Heartbeat"])
    | st.sampled_from([math.inf, -math.inf, math.nan, 1e10, threading.TIMEOUT_MAX, 2**64])
    | st.sampled_from([400, 5000]).map(lambda digits: 10**digits)  # (not in a repr'd strategy)
    | st.builds(Trap) | st.builds(TrapMapping) | st.integers(28, 40).map(nested)
)  # fmt: skip
keys = st.text(max_size=8) | st.integers() | st.builds(TrapKey, st.sampled_from(option_names))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=8,
)
service_entries = st.dictionaries(
    st.sampled_from(option_names)
    | st.text(max_size=5)
    | st.builds(TrapKey, st.sampled_from(option_names)),
    values,
    max_size=6,
)
top_keys = st.sampled_from(["version", "supervisor", "services", "other"])
plain_configs = (
    st.dictionaries(
        top_keys | st.builds(TrapKey, top_keys),
        values | st.dictionaries(st.text(max_size=6), service_entries | values, max_size=4),
        max_size=4,
    )
    | values
)
configs = plain_configs | knotted(plain_configs)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_no_exception_but_config_error_escapes(config: Any) -> None:
    with armed():
        found, _, _ = validate_config(config, allow_imports=False)
        try:
            sup = from_config(config, allow_imports=False)
        except ConfigError as err:
            assert err.problems and all(str(p) for p in err.problems)
            assert not found or list(err.problems) == found  # check and run agree
            assert not any(p.message.startswith("cannot validate:") for p in found)  # no net
        else:
            assert not found
            assert isinstance(sup, Supervisor) and all(isinstance(s, Service) for s in sup)
            assert all(type(s).daemon_safe or not s.daemon for s in sup)  # never less safe
