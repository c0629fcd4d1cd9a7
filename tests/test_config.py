from __future__ import annotations

import importlib
import json
import sys
import textwrap
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


def test_config_can_demote_a_daemon_safe_service_but_never_promote() -> None:
    sup = from_config({"services": {"m": {"type": "memory_monitor", "daemon": False}}})
    assert sup["m"].daemon is False


def test_version_defaults_to_one_and_sections_are_optional() -> None:
    assert len(from_config({})) == 0
    assert problems({"version": "1"}) == [
        "version: unsupported version '1' (this bgservices reads 1)"
    ]
    assert problems([]) == ["configuration must be a mapping (got list)"]
    assert problems({"services": []}) == ["services: must be a mapping (got list)"]


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

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["memory_monitor", "keep_alive", "cache_warmer", "log_collector",
                       "http://127.0.0.1:1/", "a.b:C", "tests.sample_services:Heartbeat"])
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=3)
    ),
    max_leaves=8,
)
option_names = sorted(
    {
        name
        for cls in (MemoryMonitor, CacheWarmer, KeepAlive, LogCollector)
        for name in options_of(cls)
    }
    | {"type", "daemon", "extra"}
)
service_entries = st.dictionaries(
    st.sampled_from(option_names) | st.text(max_size=5), values, max_size=6
)
configs = (
    st.dictionaries(
        st.sampled_from(["version", "supervisor", "services", "other"]),
        values | st.dictionaries(st.text(max_size=6), service_entries | values, max_size=4),
        max_size=4,
    )
    | values
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_no_exception_but_config_error_escapes(config: Any) -> None:
    try:
        sup = from_config(config, allow_imports=False)
    except ConfigError as err:
        assert err.problems and all(str(p) for p in err.problems)
    else:
        assert isinstance(sup, Supervisor) and all(isinstance(s, Service) for s in sup)
        assert all(type(s).daemon_safe or not s.daemon for s in sup)  # never less safe
