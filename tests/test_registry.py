"""The type registry: built-ins found by name, thread-safe from the very first lookup."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bgservices import PeriodicService, register
from bgservices.registry import BUILTINS, lookup, registered

from ._process import user_env

# Eight threads released together, each doing its very first lookup (of a built-in, and of a
# name no one registered, which makes the registry scan the entry points).
FIRST_LOOKUPS = """
import threading
from bgservices.registry import lookup

barrier = threading.Barrier(8)
found = []

def first_lookup(name):
    barrier.wait(5)
    found.append((name, lookup(name)))

names = ["cache_warmer", "keep_alive", "log_collector", "memory_monitor"] * 2
threads = [threading.Thread(target=first_lookup, args=(n,)) for n in names]
for t in threads:
    t.start()
for t in threads:
    t.join(10)
missing = sorted(name for name, cls in found if cls is None or cls.type_name != name)
print(len(found), "missing:", missing)
"""


def test_concurrent_first_lookups_all_find_their_type() -> None:
    # Fresh interpreters, so that each first lookup really is the first; run side by side.
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", FIRST_LOOKUPS],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=user_env(),
        )
        for _ in range(6)
    ]
    for run in runs:
        out, err = run.communicate(timeout=30)
        assert run.returncode == 0, err
        assert out == "8 missing: []\n"


def test_every_builtin_names_itself_as_the_table_says() -> None:
    types = registered()
    for name, path in BUILTINS.items():
        cls = types[name]
        assert f"{cls.__module__}:{cls.__qualname__}" == path
        assert cls.type_name == name and lookup(name) is cls


def test_a_builtin_name_cannot_be_taken_by_another_class() -> None:
    class Impostor(PeriodicService):
        def tick(self) -> None:
            pass

    with pytest.raises(ValueError, match="'memory_monitor' is already registered"):
        register("memory_monitor")(Impostor)
    assert lookup("memory_monitor") is not Impostor
