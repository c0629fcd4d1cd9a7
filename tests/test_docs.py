"""The documentation cannot rot: its code runs, and its reference matches the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from bgservices.cli import render_types_markdown
from bgservices.options import options_of
from bgservices.registry import registered

from ._process import ROOT, user_env

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# ```python blocks run; ```py blocks are illustrations needing other software (Django, ...).
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in BLOCK.finditer(text):
            line = text[: match.start()].count("\n") + 1
            found.append((f"{doc.name}:{line}", match[1]))
    return found


BLOCKS = python_blocks()


def test_the_docs_have_runnable_blocks() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize(("where", "code"), BLOCKS, ids=[where for where, _ in BLOCKS])
def test_every_python_block_runs(where: str, code: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{where}:\n{done.stderr}"


def test_the_quick_start_does_what_it_says(tmp_path: Path) -> None:
    _, code = BLOCKS[0]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    # the library prints nothing: its INFO events go to stdlib logging, unconfigured here
    assert done.stdout.splitlines() == ["outbox flushed", "True stopped"]
    assert done.stderr == ""


def test_the_configuration_reference_is_generated_from_the_code() -> None:
    reference = (ROOT / "docs" / "configuration.md").read_text()
    regenerate = "bgservices types --markdown > docs/configuration.md"
    assert reference == render_types_markdown(), f"out of date: {regenerate}"
    for name, cls in registered().items():
        if cls.__module__.startswith("bgservices."):
            for option in options_of(cls):
                if option != "name":
                    assert f"| `{option}` |" in reference, f"{name}.{option} is undocumented"


def test_the_readme_opens_with_the_two_commands() -> None:
    opening = (ROOT / "README.md").read_text().split("## Quick start")[0]
    assert "pip install -e . && bgservices demo" in opening
    assert "pip install -e '.[test]' && pytest" in opening


# -- every shell command, run as written from the folder it names ---------------------------

SHELL_DOCS = [ROOT / "README.md", ROOT / "examples" / "README.md"]  # both say: from the root
SHELL_BLOCK = re.compile(r"^ *```(?:sh|bash|shell)\n(.*?)^ *```", re.DOTALL | re.MULTILINE)
# Commands that would run for long run with a short bound added instead (say so here):
BOUNDED = {
    "bgservices demo": "--duration 1",  # 10 s by default: the demo itself is tested in test_cli
}
# and one is left to CI, which runs it right after the suite (.ci/run):
LEFT_TO_CI = {"python -m benchmarks": "the benchmarks take minutes; .ci/run runs them (--quick)"}


def shell_commands() -> list[tuple[str, str, Path]]:
    """(where, command, folder) for each ``bgservices``/``python`` command in a shell block.

    A block's commands run from the repository root, as both documents say; ``cd DIR`` (alone
    or before ``&&``) moves the rest of that block into DIR. Comments are not part of it. A
    command both documents give for one folder runs once, named by its first place.
    """
    found: dict[tuple[str, Path], str] = {}  # (command, folder) -> where
    for doc in SHELL_DOCS:
        text = doc.read_text()
        for match in SHELL_BLOCK.finditer(text):
            first = text[: match.start()].count("\n") + 2
            cwd = ROOT
            for offset, line in enumerate(match[1].splitlines()):
                code = line.split(" #")[0].strip()
                for part in (p.strip() for p in code.split("&&")):
                    if part.startswith("cd "):
                        cwd = cwd / part[3:].strip()
                    elif part.split(" ")[0] in ("bgservices", "python"):
                        where = f"{doc.relative_to(ROOT)}:{first + offset}"
                        found.setdefault((part, cwd), where)
    return [(where, command, cwd) for (command, cwd), where in found.items()]


COMMANDS = shell_commands()


def test_the_docs_have_shell_commands_from_both_readmes() -> None:
    wheres = {where.split(":")[0] for where, _, _ in COMMANDS}
    assert wheres == {"README.md", "examples/README.md"}
    assert any(cwd == ROOT / "examples" for _, _, cwd in COMMANDS)


def as_run(command: str) -> str:
    for prefix, bound in BOUNDED.items():
        if command.startswith(prefix) and "--duration" not in command:
            return f"{command} {bound}"
    return command


@pytest.fixture(scope="module")
def command_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """Every command run side by side (most of their time is waiting): where -> (code, output)."""
    runs = {}
    for where, command, cwd in COMMANDS:
        if command in LEFT_TO_CI:
            continue
        tmp = tmp_path_factory.mktemp("command")
        runs[where] = subprocess.Popen(
            ["sh", "-c", as_run(command)], cwd=cwd, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=user_env(TMPDIR=str(tmp)),  # no PYTHONPATH; temporary files in tmp
        )  # fmt: skip
    results = {}
    for where, run in runs.items():
        try:
            out, _ = run.communicate(timeout=50)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait(5)
        results[where] = (run.returncode, out)
    return results


@pytest.mark.parametrize(
    ("where", "command", "cwd"), COMMANDS, ids=[f"{w} {c}" for w, c, _ in COMMANDS]
)
def test_every_shell_command_works_as_written(
    where: str, command: str, cwd: Path, command_results: dict[str, tuple[int, str]]
) -> None:
    if command in LEFT_TO_CI:
        pytest.skip(LEFT_TO_CI[command])
    code, out = command_results[where]
    assert code == 0, f"{where}: {as_run(command)} (in {cwd})\n{out}"
