"""syscage-hook: the OCI hook. `prestart` hands a learning container to the tracer; `poststop` merges
what the tracer saw into the container's profile.

Exit codes follow the OCI hook rules: 0 on success; non-zero makes the runtime fail a prestart
(so a hostile annotation or malformed state stops the container) and is logged for poststop.
"""

from __future__ import annotations

import os
import sys

from syscage.config import Config, load_config
from syscage.console import say_error
from syscage.errors import SyscageError
from syscage.jsonlog import JsonLog
from syscage.names import LEARNING_MODES
from syscage.oci import HookState, Selection, has_seccomp, load_spec, no_new_privileges, parse_hook_state, select
from syscage.protocol import Watch, watch_key

PHASES = ("prestart", "poststop", "auto")
# With "auto" (hooks.d files that list several stages), the phase comes from the state's status.
STATUS_PHASE = {"creating": "prestart", "created": "prestart", "stopped": "poststop"}
USAGE = ("usage: syscage-hook prestart|poststop|auto [--key=NONCE]  (run by an OCI runtime, with the container "
         "state on stdin)")
KEY = "--key="  # the nonce syscage-runtime gave this container (hooks it wrote into the spec carry it)


def main(argv: list[str] | None = None, stdin: bytes | None = None) -> int:
    """argv without the program name; stdin: the state, if the caller has read it already."""
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2 or args[0] not in PHASES or not all(a.startswith(KEY) for a in args[1:]):
        if args and args[0] in ("-h", "--help"):
            print(__doc__.strip() + "\n\n" + USAGE)
            return 0
        say_error(f"unknown hook phase {' '.join(args)[:60]!r}; {USAGE}")
        return 2
    phase, nonce = args[0], (args[1][len(KEY):] if len(args) == 2 else None)
    config: Config | None = None
    try:
        config = load_config()
        state = parse_hook_state(sys.stdin.buffer.read() if stdin is None else stdin)
        selection = select(state.container_id, state.annotations)
        if phase == "auto":
            phase = phase_from_status(state)
    except SyscageError as exc:
        say_error(f"{phase}: {exc}")
        JsonLog.of(config, "hook").error("hook input refused", phase=phase, error=str(exc))
        return 2
    if selection.mode not in LEARNING_MODES:
        return 0  # hooks.d runs us for every container; only learners concern the hook
    context = {"phase": phase, "container_id": state.container_id, "profile": selection.profile,
               "mode": selection.mode}
    try:
        key = watch_key(nonce, str(state.bundle))
        if phase == "prestart":
            return prestart(config, state, selection, key)
        return poststop(config, state, selection, key)
    except (SyscageError, OSError) as exc:
        # OSError: an unexpected file-system failure (full disk, unwritable store): still one line.
        JsonLog.of(config, "hook").error(f"{phase} failed", error=str(exc), **context)
        say_error(f"{phase} for container {state.container_id}: {exc}")
        return 1


def prestart(config: Config, state: HookState, selection: Selection, key: str) -> int:
    from syscage.hooks.client import ask_to_watch

    if state.pid is None:
        raise SyscageError("the runtime passed no pid in the prestart state", "run syscage-hook as a prestart hook")
    spec = load_spec(state.bundle)
    watch = Watch(state.container_id, state.pid, selection.named, key, selection.mode, selection.profile_defaulted,
                  not has_seccomp(spec), no_new_privileges(spec), bundle=str(state.bundle))
    ask_to_watch(config, watch, "hook")
    return 0


def poststop(config: Config, state: HookState, selection: Selection, key: str) -> int:
    """Non-zero when the run could not be recorded: runtimes log a failed poststop hook as a warning, and
    the run's pending record stays, so the profile says it is incomplete."""
    from syscage.hooks.client import record_run, record_timeout

    record_run(state.container_id, selection.named, selection.mode, parent_executable(), "hook",
               socket_path=str(config.tracer_socket), timeout=record_timeout(config), config=config, key=key)
    return 0


def phase_from_status(state: HookState) -> str:
    try:
        return STATUS_PHASE[state.status]
    except KeyError:
        raise SyscageError(f"cannot tell the hook phase from status {state.status[:40]!r} of {state.container_id}",
                           "pass prestart or poststop explicitly") from None


def parent_executable() -> str:
    """The runtime running this hook (our parent process), e.g. /usr/sbin/runc.

    crun runs hooks from a process whose /proc/PID/exe no longer resolves (it reads "/"): then the
    process name is looked up in the standard PATH (hooks get no PATH of their own)."""
    ppid = os.getppid()
    try:
        exe = os.readlink(f"/proc/{ppid}/exe")
        if os.path.isfile(exe):
            return exe
        with open(f"/proc/{ppid}/comm") as f:
            comm = f.read().strip()
    except OSError:
        return ""
    import shutil

    from syscage.standard import STANDARD_PATH

    return shutil.which(comm, path=STANDARD_PATH) or "" if comm else ""


if __name__ == "__main__":
    sys.exit(main())
