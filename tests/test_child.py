"""Running the real runtime as a child must look, to syscage-runtime's caller, like exec'ing it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

PRELUDE = "import os, signal, sys, time\nfrom syscage.shim.child import exit_like, spawn_runtime, wait_runtime\n"


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PRELUDE + code], capture_output=True, text=True, timeout=30,
                          check=False)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_we_end_as_the_runtime_ended(signum: int) -> None:
    """A runtime killed by a signal: we die by the same signal (SIGKILL included), so the exit status matches."""
    done = run_python(f"pid = spawn_runtime('/bin/sh', ['-c', 'kill -{int(signum)} $$'])\n"
                      "code = wait_runtime(pid)\n"
                      f"assert code == -{int(signum)}, code\n"
                      "exit_like(code)")
    assert done.returncode == -signum, done.stderr


def test_exit_codes_pass_through() -> None:
    done = run_python("exit_like(wait_runtime(spawn_runtime('/bin/sh', ['-c', 'exit 7'])))")
    assert done.returncode == 7, done.stderr


def test_our_signals_reach_the_runtime_and_are_ours_again_after() -> None:
    code = ("pid = spawn_runtime('/bin/sh', ['-c', 'trap \"exit 5\" TERM; while :; do sleep 0.05; done'])\n"
            "time.sleep(0.3)\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"  # to us: forwarded to the runtime
            "code = wait_runtime(pid)\n"
            "assert code == 5, code\n"
            "assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL\n"  # as it was before spawning
            "print('ok')")
    done = run_python(code)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_runtime_dies_with_us() -> None:
    """PR_SET_PDEATHSIG: a shim that kills syscage-runtime (SIGKILL) kills the runtime too, as with exec."""
    code = ("pid = spawn_runtime('/bin/sh', ['-c', 'sleep 30'])\n"
            "print(pid, flush=True)\n"
            "time.sleep(30)")
    parent = subprocess.Popen([sys.executable, "-c", PRELUDE + code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait(timeout=10)
    for _ in range(100):
        try:
            with open(f"/proc/{child}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    break  # a zombie: dead, not yet reaped by init
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"runtime {child} outlived syscage-runtime")
