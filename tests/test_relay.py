"""The prestart relay's FIFO handshake, with /bin/sh standing in for the runtime that runs the hook."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from syscage.shim.relay import open_relay, run_with_relay

GUARD = "SYSCAGE_TEST_GUARD"


def runtime_running_hook(relay_args: list[str], then: str = "exit $?") -> list[str]:
    """argv for /bin/sh: pipe a state into the relay's hook, like a runtime, then `then`."""
    hook = " ".join(shlex.quote(a) for a in relay_args)
    return ["-c", f"printf '%s' '{{\"id\": \"c1\", \"pid\": 7}}' | {hook}; {then}"]


@pytest.mark.parametrize(("verdict", "code"), [(True, 0), (False, 1)])
def test_the_hook_gets_the_verdict(tmp_path: Path, verdict: bool, code: int) -> None:
    relay = open_relay(str(tmp_path), 10)
    assert relay is not None
    seen: list[bytes] = []

    def answer(raw: bytes) -> bool:
        seen.append(raw)
        return verdict

    entry = relay.hook_entry()
    runtime_args = runtime_running_hook([entry["path"], *entry["args"][1:]])
    assert run_with_relay("/bin/sh", runtime_args, GUARD, relay, answer) == code
    assert seen == [b'{"id": "c1", "pid": 7}']
    assert not Path(relay.directory).exists()  # FIFOs and directory removed


def test_a_runtime_that_ends_before_its_hooks_is_not_waited_for(tmp_path: Path) -> None:
    relay = open_relay(str(tmp_path), 30)
    assert relay is not None
    calls: list[bytes] = []
    assert run_with_relay("/bin/sh", ["-c", "exit 3"], GUARD, relay, lambda raw: calls.append(raw) is None) == 3
    assert calls == []
    assert not Path(relay.directory).exists()


def test_no_relay_where_fifos_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert open_relay(str(blocker), 10) is None
