"""Thread stacks, for reporting stragglers and forced exits."""

from __future__ import annotations

import sys
import threading
import traceback

__all__ = ["all_stacks", "thread_stack"]


def thread_stack(thread: threading.Thread) -> str:
    """The current stack of *thread*, innermost call last."""
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None:
        return "(no frame: the thread is not running Python code)\n"
    return "".join(traceback.format_stack(frame))


def all_stacks() -> str:
    """Every live thread's name and stack."""
    return "".join(
        f"--- thread {t.name} (daemon={t.daemon}) ---\n{thread_stack(t)}"
        for t in threading.enumerate()
    )
