"""syscage-runtime's prestart relay, for a learning `create` (the containerd path).

The container must be watched before its runtime loads the seccomp filter, and a prestart hook is the
only point where the runtime waits. Here that hook is a shell one-liner, not a Python process: it copies
the runtime's state into a FIFO and waits for a verdict on a second one. syscage-runtime runs the real
runtime as its child for this one call (instead of exec'ing it), reads the state, has the tracer watch the
container (the same request and learn.on_tracer_error policy as `syscage-hook prestart`) and answers "ok"
or "fail". That spares every learning container start a Python interpreter and its imports.

If the relay cannot be set up, the spec gets the `syscage-hook prestart` hook instead.
"""

from __future__ import annotations

import contextlib
import os
import select
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from syscage.console import say_error
from syscage.locks import open_locked
from syscage.shim.child import spawn_runtime, wait_runtime
from syscage.shim.modifiers import RELAY_TAG
from syscage.standard import STANDARD_PATH

SHELL = "/bin/sh"
# $1: the state FIFO, $2: the verdict FIFO. Both FIFOs are opened by the shell itself (exec, and the
# redirection of the builtin `read`), never by a forked child: if syscage-runtime is gone, the runtime's
# hook timeout kills the one process that waits, and nothing is left holding the runtime's pipes. `read`
# fails at EOF: no verdict means failure. A hook left in a reused bundle whose FIFOs are gone does nothing.
# A failing verdict carries its reason, which the hook prints: runtimes put a failed hook's stderr into
# the error they report (and containerd shows the runtime's last error line).
HOOK_SCRIPT = ('[ -p "$1" ] || exit 0; exec 3>"$1" && cat >&3 && exec 3>&- && IFS= read -r verdict < "$2"; '
               '[ "$verdict" = ok ] && exit 0; printf \'%s\\n\' "${verdict#fail }" >&2; exit 1')
HOOK_PATH = f"PATH={STANDARD_PATH}"  # runtimes give hooks no PATH
RELAY_DIR = "relay"
LOCK = "lock"


class PrestartRelay(NamedTuple):
    directory: str
    state_fifo: str
    verdict_fifo: str
    timeout: int
    lock_fd: int  # an flock held while the relay lives: what sweep() tests, in any PID namespace

    def close(self) -> None:
        """Remove the FIFOs and directory, and let go of the lock."""
        close_relay(self.directory)
        os.close(self.lock_fd)

    def hook_entry(self) -> dict[str, Any]:
        return {"path": SHELL, "args": ["sh", "-c", HOOK_SCRIPT, RELAY_TAG, self.state_fifo,
                                        self.verdict_fifo], "timeout": self.timeout, "env": [HOOK_PATH]}


def open_relay(run_dir: str, timeout: int) -> PrestartRelay | None:
    """A private directory with the two FIFOs, or None if they cannot be made (no relay, then)."""
    parent = os.path.join(run_dir, RELAY_DIR)
    directory = os.path.join(parent, f"{os.getpid()}-{os.urandom(4).hex()}")
    lock_fd = -1
    try:
        os.makedirs(parent, mode=0o700, exist_ok=True)
        sweep(parent)
        os.mkdir(directory, 0o700)
        lock_fd = open_locked(os.path.join(directory, LOCK), blocking=False) or -1
        if lock_fd < 0:
            raise OSError("the relay's new lock is held")
        relay = PrestartRelay(directory, os.path.join(directory, "state"), os.path.join(directory, "verdict"),
                              timeout, lock_fd)
        os.mkfifo(relay.state_fifo, 0o600)
        os.mkfifo(relay.verdict_fifo, 0o600)
    except OSError:
        if lock_fd >= 0:
            os.close(lock_fd)
        close_relay(directory)
        return None
    return relay


def sweep(parent: str) -> None:
    """Relays whose syscage-runtime died (a SIGKILL skips its clean-up, and takes the runtime with it, so no
    hook timeout will come): free a hook still waiting at either FIFO, with a failing verdict, and remove.
    A relay is dead when its lock can be taken (a PID would not do: run_dir may be shared across PID
    namespaces)."""
    for name in os.listdir(parent):
        directory = os.path.join(parent, name)
        try:
            probe = open_locked(os.path.join(directory, LOCK), blocking=False, create=False)
        except OSError:
            probe = None
        if probe is None:
            continue  # alive, or being made (no lock file yet) or being removed
        try:
            _free_hook(directory)
            close_relay(directory)
        finally:
            os.close(probe)


def _free_hook(directory: str) -> None:
    for fifo, flags in (("state", os.O_RDONLY), ("verdict", os.O_RDWR)):
        try:
            fd = os.open(os.path.join(directory, fifo), flags | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        with contextlib.suppress(OSError):
            if fifo == "verdict":
                os.write(fd, b"fail syscage: the syscage-runtime answering this hook is gone\n")
        os.close(fd)


def close_relay(directory: str) -> None:
    for name in ("state", "verdict", LOCK):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, name))
    with contextlib.suppress(OSError):
        os.rmdir(directory)


def run_with_relay(relay: PrestartRelay, answer: Callable[[bytes], str | None], missed: Callable[[], int],
                   runtime: str, args: list[str]) -> int:
    """Run the runtime's `create`, answering its prestart hook with answer(state) (None: ok, else why it
    fails); the runtime's exit code (minus a signal that killed it, for child.exit_like). missed() gives
    the code when the runtime succeeded but the hook never came."""
    try:
        # Opened before the runtime starts, so the hook's `exec 3>state` never waits for a reader. The
        # verdict FIFO is opened read-write: that never blocks, and keeps "ok" in the pipe until the
        # hook reads it.
        state_fd = os.open(relay.state_fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        verdict_fd = os.open(relay.verdict_fifo, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        relay.close()
        raise
    try:
        child = spawn_runtime(runtime, args)
        state = _read_state(state_fd, child, relay.timeout)
        failure: str | None = "syscage: no prestart state came within the hook's timeout"
        if state is not None:
            try:
                failure = answer(state)
            except Exception as exc:  # never leave the hook waiting, nor the runtime unwaited
                failure = f"syscage: prestart relay failed: {exc!r}"
                say_error(f"prestart relay failed: {exc!r}")
        reason = " ".join((failure or "").split())  # one line
        os.write(verdict_fd, b"ok\n" if failure is None else f"fail {reason}\n".encode())
        code = wait_runtime(child)
        return missed() if code == 0 and state is None else code
    finally:
        os.close(state_fd)
        os.close(verdict_fd)
        relay.close()


def _read_state(fd: int, child: int, timeout: float) -> bytes | None:
    """The state the hook wrote, once it closed the FIFO; None if the runtime ended first (it failed before
    its hooks, or no hook ran) or no state came within the hook's time (the verdict is then "fail")."""
    try:
        pidfd: int | None = os.pidfd_open(child)
    except OSError:  # a kernel before 5.3: look at the runtime between short waits instead
        pidfd = None
    data = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            watched = [fd] if pidfd is None else [fd, pidfd]
            ready, _, _ = select.select(watched, [], [], remaining if pidfd is not None else min(remaining, 0.05))
            if fd in ready:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    continue
                if chunk:
                    data += chunk
                    continue
                return bytes(data)  # the hook closed its end (a FIFO reports no hang-up before a writer came)
            if (pidfd is not None and pidfd in ready) or (pidfd is None and _ended(child)):
                return None
        return None
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _ended(pid: int) -> bool:
    """Whether the runtime has exited, without reaping it (wait_runtime does that)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True
