"""syscage-hook: the OCI hook. `prestart` hands a learning container to the tracer; `poststop` merges
what the tracer saw into the container's profile.

Exit codes follow the OCI hook rules: 0 on success; non-zero makes the runtime fail a prestart
(so a hostile annotation or malformed state stops the container) and is logged for poststop.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from syscage.config import Config, load_config
from syscage.errors import SyscageError
from syscage.logs import say_error, say_warning, setup_logging
from syscage.oci import HookState, Selection, has_seccomp, load_spec, no_new_privileges, parse_hook_state, select

PHASES = ("prestart", "poststop", "auto")
# With "auto" (hooks.d files that list several stages), the phase comes from the state's status.
STATUS_PHASE = {"creating": "prestart", "created": "prestart", "stopped": "poststop"}
LEARNING_MODES = ("learn", "complain")
USAGE = "usage: syscage-hook prestart|poststop|auto  (run by an OCI runtime, with the container state on stdin)"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in PHASES:
        if args and args[0] in ("-h", "--help"):
            print(__doc__.strip() + "\n\n" + USAGE)
            return 0
        say_error(f"unknown hook phase {' '.join(args)[:60]!r}; {USAGE}")
        return 2
    phase = args[0]
    try:
        config = load_config()
        state = parse_hook_state(sys.stdin.buffer.read())
        selection = select(state.container_id, state.annotations)
        if phase == "auto":
            phase = phase_from_status(state)
    except SyscageError as exc:
        say_error(f"{phase}: {exc}")
        _log_rejection(phase, str(exc))
        return 2
    if selection.mode not in LEARNING_MODES:
        return 0  # hooks.d runs us for every container; only learners concern the hook
    log = setup_logging(config, "hook").bind(phase=phase, container_id=state.container_id,
                                             profile=selection.profile, mode=selection.mode)
    if selection.profile_defaulted:
        log.info("no io.syscage.profile annotation; using the default profile name")
    try:
        if phase == "prestart":
            return prestart(config, state, selection, log)
        return poststop(config, state, selection, log)
    except (SyscageError, OSError) as exc:
        # OSError: an unexpected file-system failure (full disk, unwritable store): still one line.
        log.error(f"{phase} failed", error=str(exc))
        say_error(f"{phase} for container {state.container_id}: {exc}")
        return 1


def prestart(config: Config, state: HookState, selection: Selection, log: Any) -> int:
    from syscage.hooks.client import request_starting_tracer

    if state.pid is None:
        raise SyscageError("the runtime passed no pid in the prestart state", "run syscage-hook as a prestart hook")
    spec = load_spec(state.bundle)
    exec_mode = not has_seccomp(spec)
    message = {"op": "watch", "container_id": state.container_id, "pid": state.pid, "profile": selection.profile,
               "exec_mode": exec_mode, "no_new_privileges": no_new_privileges(spec)}
    try:
        reply = request_starting_tracer(config, message)
        if not reply.get("ok"):
            raise SyscageError(str(reply.get("error")), "see the tracer's log")
    except SyscageError as exc:
        if config.on_tracer_error == "fail":
            raise
        log.warning("container runs untraced", error=str(exc))
        say_warning(f"container {state.container_id} runs untraced: {exc}; its run will be recorded as incomplete")
        return 0
    log.info("watching", slot=reply.get("slot"), tracer=reply.get("instance"),
             cutover="exec" if exec_mode else "seccomp")
    return 0


def poststop(config: Config, state: HookState, selection: Selection, log: Any) -> int:
    from syscage.hooks.client import TracerUnavailable, request
    from syscage.hooks.observe import observation_from_report
    from syscage.profile import Observation
    from syscage.store import ProfileStore, utc_now

    runtime_name, runtime = runtime_of_parent()
    try:
        reply = request(config, {"op": "flush", "container_id": state.container_id})
        problem = None if reply.get("ok") else str(reply.get("error"))
    except TracerUnavailable as exc:
        reply, problem = {}, f"the tracer was not running at poststop ({exc}): it died or was stopped"
    if problem is None:
        obs = observation_from_report(state.container_id, reply, runtime, runtime_name)
    else:
        obs = Observation(container_id=state.container_id, started="", stopped=utc_now(), cutover="none",
                          runtime=runtime, kernel=os.uname().release, problems=[problem])
    assert selection.profile is not None
    profile = ProfileStore(config.store, config.seccomp_errno).record_run(selection.profile, obs)
    log.info("run recorded", syscalls=len(obs.syscalls), cutover=obs.cutover, complete=obs.complete,
             problems=obs.problems, profile_syscalls=len(profile["syscalls"]), runs=len(profile["runs"]))
    if not obs.complete:
        say_warning(f"run of {state.container_id} is incomplete: {'; '.join(obs.problems)}")
    return 0


def phase_from_status(state: HookState) -> str:
    try:
        return STATUS_PHASE[state.status]
    except KeyError:
        raise SyscageError(f"cannot tell the hook phase from status {state.status[:40]!r} of {state.container_id}",
                           "pass prestart or poststop explicitly") from None


def runtime_of_parent() -> tuple[str, str]:
    """(name, version line) of the runtime running this hook: our parent process."""
    try:
        exe = os.readlink(f"/proc/{os.getppid()}/exe")
    except OSError:
        return "", ""
    name = Path(exe).name
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=5, check=False).stdout
        version = out.splitlines()[0].strip() if out else name
    except (OSError, subprocess.SubprocessError):
        version = name
    return name, version


def _log_rejection(phase: str, error: str) -> None:
    """Log a refused invocation too, if the config can be read at all."""
    with contextlib.suppress(SyscageError, OSError):
        setup_logging(load_config(), "hook").error("hook input refused", phase=phase, error=error)


if __name__ == "__main__":
    sys.exit(main())
