"""The real runtime, as syscage-runtime starts it (exec'd, or as a child): the loop guard in its
environment, and the one line when it cannot be started. Only `os` and `sys`: the passthrough path uses it."""

from __future__ import annotations

import os

from syscage.console import say_error
from syscage.standard import LOOP_GUARD

PROGRAM = "syscage-runtime"



def exec_runtime(runtime: str, args: list[str]) -> None:
    """Replace this process with the real runtime; on failure, one line on stderr (the caller exits 127)."""
    os.environ[LOOP_GUARD] = "1"
    try:
        os.execv(runtime, [runtime, *args])
    except OSError as exc:
        say_error(f"cannot run the real runtime {runtime}: {exc.strerror}; set runtime.path in the syscage config",
                  PROGRAM)
