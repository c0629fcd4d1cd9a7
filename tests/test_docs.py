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

ROOT = Path(__file__).parent.parent
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
    # print() in a service thread may interleave with log lines from others: look for the text
    assert done.returncode == 0 and "outbox flushed" in done.stdout
    assert done.stdout.splitlines()[-1] == "True stopped"  # printed after every thread ended


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
