"""Running the real runtime as a child, for the two calls where syscage-runtime has work to do after it
starts (a learning `create`: the prestart relay) or ends (a learning `delete`: recording the run).

For its caller the child must behave as if syscage-runtime had exec'd it: it dies with us (a shim that
kills its runtime on a timeout kills us), the signals we get are passed on, and we end the way it ended,
by the same signal if a signal ended it.
"""

from __future__ import annotations

import os
import signal
import sys

from syscage.shim.guard import exec_runtime

FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
PR_SET_PDEATHSIG = 1
_saved: dict[int, dict[int, object]] = {}  # child pid -> our signal handlers before we forwarded them


def spawn_runtime(runtime: str, args: list[str]) -> int:
    """Start the real runtime with our argv and stdio; its pid. Our signals are forwarded to it."""
    import ctypes  # here: only these two calls pay its import

    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:  # we died before prctl took effect
                os._exit(137)
            for signum in FORWARDED:
                signal.signal(signum, signal.SIG_DFL)
            exec_runtime(runtime, args)
        finally:
            os._exit(127)
    _saved[pid] = {signum: signal.signal(signum, lambda received, _frame: os.kill(pid, received))
                   for signum in FORWARDED}
    return pid


def wait_runtime(pid: int) -> int:
    """Its exit code, or minus the signal that killed it (os.waitstatus_to_exitcode); see exit_like().
    From then on our signals are ours again: the pid may soon be another process's."""
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    for signum, handler in _saved.pop(pid, {}).items():
        signal.signal(signum, handler)
    return os.waitstatus_to_exitcode(status)


def exit_like(code: int) -> None:
    """End this process as the runtime ended: with its exit code, or killed by the same signal."""
    if code < 0:
        signum = -code
        sys.stdout.flush()
        sys.stderr.flush()
        if signum not in (signal.SIGKILL, signal.SIGSTOP):  # those two cannot be caught anyway
            signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        code = 128 + signum  # a signal whose default action does not end the process
    sys.exit(code)
