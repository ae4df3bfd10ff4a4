"""Running the real runtime as a child, for the two calls where syscage-runtime has work to do after it
starts (a learning `create`: the prestart relay) or ends (a learning `delete`: recording the run)."""

from __future__ import annotations

import os
import sys


def spawn_runtime(runtime: str, args: list[str], loop_guard: str) -> int:
    """Start the real runtime with our argv and stdio; its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            os.environ[loop_guard] = "1"
            os.execv(runtime, [runtime, *args])
        except OSError as exc:
            sys.stderr.write(f"syscage-runtime: error: cannot run the real runtime {runtime}: {exc.strerror}; "
                             "set runtime.path in the syscage config\n")
        os._exit(127)
    return pid


def wait_runtime(pid: int) -> int:
    """Its exit code (128 + signal if it was killed), as a shell would report it."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
