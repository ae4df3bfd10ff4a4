"""The prestart relay's FIFO handshake, with /bin/sh standing in for the runtime that runs the hook."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from syscage.shim.relay import HOOK_SCRIPT, open_relay, run_with_relay


def runtime_running_hook(hook: list[str], log: Path) -> list[str]:
    """argv for /bin/sh: pipe a state into the relay's hook like a runtime, keep its stderr, end with its code."""
    command = " ".join(shlex.quote(a) for a in hook)
    return ["-c", f"printf '%s' '{{\"id\": \"c1\", \"pid\": 7}}' | {command} 2>{shlex.quote(str(log))}; exit $?"]


def hook_argv(entry: dict) -> list[str]:
    return [entry["path"], *entry["args"][1:]]


@pytest.mark.parametrize(("failure", "code"), [(None, 0), ("syscage: container c1: the tracer is gone", 1)])
def test_the_hook_gets_the_verdict_and_says_why(tmp_path: Path, failure: str | None, code: int) -> None:
    relay = open_relay(str(tmp_path), 10)
    assert relay is not None
    seen: list[bytes] = []

    def answer(raw: bytes) -> str | None:
        seen.append(raw)
        return failure

    log = tmp_path / "hook.err"
    argv = runtime_running_hook(hook_argv(relay.hook_entry()), log)
    assert run_with_relay(relay, answer, lambda: 99, "/bin/sh", argv) == code
    assert seen == [b'{"id": "c1", "pid": 7}']
    assert log.read_text().strip() == (failure or "")  # a runtime puts this into its error
    assert not Path(relay.directory).exists()  # FIFOs and directory removed


def test_a_runtime_that_ends_before_its_hooks_is_not_waited_for(tmp_path: Path) -> None:
    relay = open_relay(str(tmp_path), 30)
    assert relay is not None
    calls: list[bytes] = []
    assert run_with_relay(relay, calls.append, lambda: 99, "/bin/sh", ["-c", "exit 3"]) == 3
    assert calls == []


def test_a_runtime_that_succeeds_without_the_hook_is_reported(tmp_path: Path) -> None:
    relay = open_relay(str(tmp_path), 30)
    assert relay is not None
    assert run_with_relay(relay, lambda raw: None, lambda: 42, "/bin/sh", ["-c", "exit 0"]) == 42


def test_a_stale_relay_hook_does_nothing(tmp_path: Path) -> None:
    """A reused bundle may still name FIFOs that are long gone: the hook must neither block nor fail."""
    gone = tmp_path / "gone"
    done = subprocess.run(["/bin/sh", "-c", HOOK_SCRIPT, "x", str(gone / "state"), str(gone / "verdict")],
                          input=b"{}", timeout=10, check=False)
    assert done.returncode == 0


def test_no_relay_where_fifos_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert open_relay(str(blocker), 10) is None


def test_relays_of_a_dead_syscage_runtime_are_swept_and_their_hook_freed(tmp_path: Path) -> None:
    relay = open_relay(str(tmp_path), 10)
    assert relay is not None
    orphan = Path(relay.directory)
    os.close(relay.lock_fd)  # as when its syscage-runtime dies: the lock goes with the process
    hook = subprocess.Popen(["/bin/sh", "-c", HOOK_SCRIPT, "x", str(orphan / "state"), str(orphan / "verdict")],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert hook.stdin is not None
    hook.stdin.write(b"{}")
    hook.stdin.close()  # the hook now waits at `exec 3>state`: nobody reads
    wchan = Path(f"/proc/{hook.pid}/wchan")
    for _ in range(500):
        if wchan.read_text() == "wait_for_partner":  # blocked in the FIFO's open
            break
        time.sleep(0.01)
    live = open_relay(str(tmp_path), 10)  # the next relay sweeps
    assert live is not None and Path(live.directory).exists()  # and leaves a live one (its own) alone
    assert hook.wait(timeout=10) == 1
    assert not orphan.exists()
