"""Type checkers see options as typed keywords: mypy --strict and pyright on user programs.

Both checkers run once, at the same time, on all the programs below; each test reads the
lines about its own program.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ._process import user_env

GOOD = """
from bgservices import PeriodicService, Service, Supervisor, option


class CacheWarmer(PeriodicService):
    daemon_safe = True
    url: str = option(default="http://127.0.0.1:8000/", help="Where to fetch from.")
    retries: int = option(default=3, ge=0)

    def init_state(self) -> None:
        super().init_state()
        self.cache: dict[str, bytes] = {}

    def tick(self) -> None:
        self.log.info("warmed", entries=len(self.cache), url=self.url)


class Outbox(Service):
    batch: int = 100

    def run(self) -> None:
        while not self.wait(1.0):
            self.log.debug("flushing", batch=self.batch)


warmer = CacheWarmer(name="warm", url="http://127.0.0.1:9/", retries=2, interval=5.0)
sup = Supervisor([warmer, Outbox(batch=10)])
cache: dict[str, bytes] = sup.get("warm", CacheWarmer).cache
outbox: Outbox = sup.get("outbox", Outbox)
"""

BAD = """
from bgservices import Service, Supervisor, option


class Poller(Service):
    url: str = option(default="")
    retries: int = option(default=3)

    def run(self) -> None:
        self.log.info("polled", url=self.url)


misspelled = Poller(urll="x")
wrong_type = Poller(retries="three")
untyped = Supervisor([Poller()])["poller"].url
"""

BUILT_IN = """
from bgservices.services import MemoryMonitor

monitor = MemoryMonitor(rss_limit_mb="512")
"""

PROGRAMS = {"good.py": GOOD, "bad.py": BAD, "built_in.py": BUILT_IN}
# A cold mypy cache on a busy machine takes longer than the suite's 60 s per test.
pytestmark = pytest.mark.timeout(360)


def _run_checkers(folder: Path, cache: Path) -> dict[str, str]:
    for name, text in PROGRAMS.items():
        (folder / name).write_text(text.lstrip())
    mypy = [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", "--cache-dir", cache]
    commands = {"mypy": [*mypy, *PROGRAMS]}
    pyright = shutil.which("pyright", path=str(Path(sys.executable).parent))
    if pyright:
        commands["pyright"] = [pyright, *PROGRAMS]
    running = {
        name: subprocess.Popen(
            argv, cwd=folder, env=user_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for name, argv in commands.items()
    }
    output = {}
    for name, proc in running.items():
        try:
            out, _ = proc.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            if name == "mypy":
                raise
            out += b"\n(gave up after 150 s: fetching its npm package?)"
        output[name] = out.decode()
    if "pyright" in output and not re.search(r"\d+ errors?, \d+ warnings?", output["pyright"]):
        output["pyright-unusable"] = output.pop("pyright")  # it could not fetch its npm package
    return output


@pytest.fixture(scope="module")
def checked(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> dict[str, str]:
    cache = getattr(pytestconfig, "cache", None)  # mypy's cache kept between runs: seconds saved
    where = cache.mkdir("bgservices-mypy") if cache else tmp_path_factory.mktemp("mypy-cache")
    return _run_checkers(tmp_path_factory.mktemp("typing"), where)


@pytest.fixture(params=["mypy", "pyright"])
def checker(request: pytest.FixtureRequest, checked: dict[str, str]) -> tuple[str, str]:
    name: str = request.param
    if name not in checked:
        reason = checked.get(f"{name}-unusable", f"{name} is not installed")
        if os.environ.get("CI"):  # CI installs both ('.[test]'): a checker that cannot run fails
            pytest.fail(f"{name} cannot run here, and CI must run it: {reason[:2000]}")
        print(f"skipping {name}: {reason}")
        pytest.skip(f"{name} cannot run here: {reason[:200]}")
    return name, checked[name]


def _about(output: str, program: str) -> list[str]:
    return [line.strip() for line in output.splitlines() if f"{program}:" in line]


def test_correct_usage_passes(checker: tuple[str, str]) -> None:
    _, output = checker
    assert _about(output, "good.py") == [], output


def test_a_misspelled_option_and_a_wrong_type_are_reported(checker: tuple[str, str]) -> None:
    name, output = checker
    lines = _about(output, "bad.py")
    if name == "mypy":
        assert lines == [
            'bad.py:12: error: Unexpected keyword argument "urll" for "Poller"; '
            'did you mean "url"?  [call-arg]',
            'bad.py:13: error: Argument "retries" to "Poller" has incompatible type "str"; '
            'expected "int"  [arg-type]',
            'bad.py:14: error: "Service" has no attribute "url"  [attr-defined]',
        ], output
    else:
        assert [line.split(" - ", 1)[1] for line in lines] == [
            'error: No parameter named "urll" (reportCallIssue)',
            """error: Argument of type "Literal['three']" cannot be assigned to parameter """
            '"retries" of type "int" in function "__init__"',
            'error: Cannot access attribute "url" for class "Service"',
        ], output
        assert [line.split(" - ", 1)[0].rsplit("/", 1)[-1] for line in lines] == [
            "bad.py:12:21",
            "bad.py:13:29",
            "bad.py:14:44",
        ]


def test_a_built_in_services_option_has_its_type(checker: tuple[str, str]) -> None:
    name, output = checker
    lines = _about(output, "built_in.py")
    if name == "mypy":
        assert lines == [
            'built_in.py:3: error: Argument "rss_limit_mb" to "MemoryMonitor" has incompatible '
            'type "str"; expected "float | None"  [arg-type]'
        ], output
    else:
        assert [line.split(" - ", 1)[1] for line in lines] == [
            """error: Argument of type "Literal['512']" cannot be assigned to parameter """
            '"rss_limit_mb" of type "float | None" in function "__init__"'
        ], output
