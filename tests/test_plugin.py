"""The pytest plugin in a fresh project: found through the installed entry point, cheap to load."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from ._process import ROOT, user_env

# Other installed plugins are left out: hypothesis alone takes seconds to load.
QUIET = ["-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:anyio"]

FRESH_TESTS = """
import signal
import sys
import threading

import pytest

MODULES_AT_START = set(sys.modules)  # before this file imports bgservices


def test_the_plugin_did_not_import_bgservices():
    assert "_bgservices_pytest" in MODULES_AT_START
    assert not any(m == "bgservices" or m.startswith("bgservices.") for m in MODULES_AT_START)


def test_fixtures(bgservices_supervisor, bgservices_clock, bgservices_events):
    from bgservices import PeriodicService

    class Beat(PeriodicService):
        def tick(self):
            pass

    beat = Beat(interval=10)
    sup = bgservices_supervisor(beat, clock=bgservices_clock)
    sup.start()
    bgservices_clock.wait_for_sleepers(1)
    bgservices_clock.advance(20)
    assert beat.ticks == 3
    bgservices_events.wait_for("service.running", service="beat")
    # not stopped here: the fixture stops it


def test_the_supervisor_fixture_stopped_the_last_one():
    assert not [t for t in threading.enumerate() if t.name.startswith("bgservices:")]


@pytest.mark.bgservices_hygiene
def test_leaks_a_thread():
    release = threading.Event()
    threading.Thread(target=release.wait, args=(3,), name="bgservices:leak", daemon=True).start()


def test_changes_a_handler(bgservices_hygiene):
    signal.signal(signal.SIGTERM, lambda *_: None)


def test_not_checked_without_opting_in():
    signal.signal(signal.SIGINT, signal.getsignal(signal.SIGINT))
    threading.Thread(target=threading.Event().wait, args=(0.5,), name="bgservices:x").start()
"""


def test_the_plugin_works_in_a_fresh_project(tmp_path: Path) -> None:
    (tmp_path / "test_fresh.py").write_text(textwrap.dedent(FRESH_TESTS))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", *QUIET],
        cwd=tmp_path,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = done.stdout
    outcomes = dict(re.findall(r"test_fresh\.py::(\w+) (PASSED|FAILED|ERROR)", out))
    assert outcomes == {
        "test_the_plugin_did_not_import_bgservices": "PASSED",
        "test_fixtures": "PASSED",
        "test_the_supervisor_fixture_stopped_the_last_one": "PASSED",
        "test_leaks_a_thread": "ERROR",  # at teardown: the marker opted it in
        "test_changes_a_handler": "ERROR",
        "test_not_checked_without_opting_in": "PASSED",
    }, out
    assert "plugins:" in out and "bgservices-" in out  # named by its distribution
    assert "bgservices threads left running: ['bgservices:leak']" in out
    assert "signal handlers left changed: ['SIGTERM']" in out


def test_the_ini_option_checks_every_test(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\nbgservices_hygiene = true\n")
    (tmp_path / "test_leaky.py").write_text(
        "import threading\n\n"
        "def test_leaks():\n"
        "    threading.Thread(target=threading.Event().wait, args=(3,),\n"
        "                     name='bgservices:leak', daemon=True).start()\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *QUIET],
        cwd=tmp_path,
        env=user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "1 passed, 1 error" in done.stdout, done.stdout


def test_the_readme_shows_the_example_as_it_is() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Testing your services")[1].split("\n## ")[0]
    excerpt = section.split("```py\n")[1].split("```")[0]
    assert excerpt in (ROOT / "examples" / "testing" / "test_poller.py").read_text()
    assert "python -m pytest examples/testing" in section  # run by test_docs as written
