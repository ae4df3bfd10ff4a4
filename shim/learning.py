"""One learning `create` (or `run`) as syscage-runtime carries it: the tracer's watch request for it, its
nonce and learning marker, and its prestart relay. The hooks it puts in the spec (hooks()), the answer to
its relayed prestart (answer()), what happens when that never comes (missed()), running the runtime
(serve()) and taking it all back when the container is refused (abandon()) all belong to this one object.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from syscage.config import Config
from syscage.console import say
from syscage.errors import SyscageError
from syscage.jsonlog import JsonLog
from syscage.oci import Selection
from syscage.protocol import Watch
from syscage.shim.modifiers import HOOK_PHASES, Modifier, add_hook, add_learn_hooks
from syscage.shim.relay import PrestartRelay, open_relay, run_with_relay


class LearningCreate:
    """marker: where a `create` leaves its learning marker, so that syscage-runtime's `delete` records the
    run and no poststop hook is needed (None for `run`, which deletes the container itself, or when the
    marker could not be written); such a create also gets the prestart relay when it can be set up."""

    def __init__(self, config: Config, selection: Selection, container_id: str, marker: str | None,
                 runtime_root: str | None, tell: RuntimeLog, log: JsonLog) -> None:
        self.config, self.container_id, self.runtime_root, self.tell = config, container_id, runtime_root, tell
        self.nonce = os.urandom(8).hex()  # this create's own: the tracer hands its watch only to a record naming it
        self.marker = marker if marker is not None and self._leave_marker(marker, selection, log) else None
        # The pid and key come with the prestart state; exec_mode and no_new_privileges with the shaped spec.
        self.watch = Watch(container_id, 0, selection.named, "", selection.mode, selection.profile_defaulted)
        self.relay: PrestartRelay | None = None

    def _leave_marker(self, marker: str, selection: Selection, log: JsonLog) -> bool:
        """False (the spec then gets a poststop hook) if the marker cannot be written."""
        from syscage.hooks.client import record_timeout
        from syscage.markers import write_marker

        try:
            write_marker(marker, self.container_id, self.runtime_root, selection.named, selection.mode,
                         str(self.config.tracer_socket), record_timeout(self.config), self.nonce)
        except OSError as exc:
            log.warning("no learning marker; the run is recorded by a poststop hook", marker=marker, error=str(exc))
            return False
        return True

    @property
    def recorded_at(self) -> str:
        return "delete" if self.marker else "poststop hook"

    def hooks(self, shaped: dict[str, Any]) -> Modifier:
        """The learn hooks for the spec as the other modifiers leave it (`shaped`). With a marker, the run is
        recorded at `delete`, so there is no poststop hook, and the prestart is the relay if it can be set up;
        otherwise `syscage-hook prestart --prepared=...` (syscage.hooks.fast_prestart)."""
        from syscage.hooks.fast_prestart import prepared_argument
        from syscage.oci import has_seccomp, no_new_privileges

        self.watch.exec_mode, self.watch.no_new_privileges = not has_seccomp(shaped), no_new_privileges(shaped)
        self.relay = open_relay(str(self.config.run_dir), self.config.hook_timeout) if self.marker else None
        if self.relay is not None:
            return add_hook("prestart", self.relay.hook_entry())
        prepared = prepared_argument(str(self.config.tracer_socket), self.watch, self.nonce)
        phases = ("prestart",) if self.marker else HOOK_PHASES
        return add_learn_hooks(str(hook_binary(self.config)), self.config.hook_timeout, hook_env(), phases,
                               (prepared,), (f"--key={self.nonce}",))

    def answer(self, raw: bytes) -> str | None:
        """Answers the relayed prestart: None once the tracer watches (or, with learn.on_tracer_error = run,
        after a warning that the container runs untraced), else why the container must fail. Messages go to
        stderr and to the runtime's --log: for a containerd `create`, stderr is the container's."""
        from syscage.hooks.client import ask_to_watch
        from syscage.oci import parse_hook_state
        from syscage.protocol import watch_key

        cid, watch = self.container_id, self.watch
        try:
            state = parse_hook_state(raw)
            if state.container_id != cid or state.pid is None:
                raise SyscageError(f"the prestart state names container {state.container_id!r} (pid {state.pid})",
                                   "report this: the runtime's state does not match its command line")
            ask_to_watch(self.config, Watch(cid, state.pid, watch.profile, watch_key(self.nonce, str(state.bundle)),
                                            watch.mode, watch.profile_defaulted, watch.exec_mode,
                                            watch.no_new_privileges, via="relay", bundle=str(state.bundle)),
                         "runtime", warn=self.tell.warning)
        except SyscageError as exc:
            self.tell.error(f"prestart: {exc}")
            JsonLog.of(self.config, "runtime").error("prestart failed", container_id=cid, profile=watch.profile,
                                                     error=str(exc))
            return f"syscage: container {cid}: {exc}"
        return None

    def missed(self) -> int:
        """The runtime created the container but its relayed prestart never ran (the hook could not see its
        FIFO): the container is not watched. Applies learn.on_tracer_error; the exit code to end with."""
        problem = "its prestart relay never ran, so it is not traced"
        if self.config.on_tracer_error != "fail":
            self.tell.warning(f"{problem}; its run will be recorded as incomplete")
            return 0
        self.tell.error(f"{problem} (learn.on_tracer_error = fail: deleted)")
        from syscage.shim.child import spawn_runtime, wait_runtime

        options = [*(["--root", self.runtime_root] if self.runtime_root else []), *self.tell.options()]
        wait_runtime(spawn_runtime(str(self.config.runtime_path),
                                   [*options, "delete", "--force", self.container_id]))
        return 1

    def serve(self, runtime: str, args: list[str]) -> int:
        """Run the runtime as our child (answering its relayed prestart if there is one): a create failing
        after its prestart then lets the tracer's watch go (syscage.shim.finish.release_failed_create)."""
        if self.relay is not None:
            return run_with_relay(self.relay, self.answer, self.missed, runtime, args)
        from syscage.shim.child import spawn_runtime, wait_runtime

        return wait_runtime(spawn_runtime(runtime, args))

    def abandon(self) -> None:
        """The container is refused: its relay and marker go (it will not exist)."""
        if self.relay is not None:
            self.relay.close()
            self.relay = None
        if self.marker:
            from syscage.markers import remove_marker

            remove_marker(self.marker)


def hook_binary(config: Config) -> Path:
    """runtime.hook_path, or else the syscage-hook installed beside this syscage-runtime."""
    if config.hook_path.exists():
        return config.hook_path
    beside = Path(sys.argv[0]).absolute().parent / "syscage-hook"
    if beside.exists():
        return beside
    raise SyscageError(f"the hook {config.hook_path} does not exist", "install syscage or set runtime.hook_path")


def hook_env() -> list[str]:
    """Runtimes start hooks with only the environment written in the spec: pass our config along."""
    return [f"SYSCAGE_CONFIG={os.environ['SYSCAGE_CONFIG']}"] if os.environ.get("SYSCAGE_CONFIG") else []


class RuntimeLog:
    """One line for the operator: on stderr, and in the runtime's --log file, where containerd looks for
    a runtime's error (a containerd `create` gives the runtime the container's own stdio)."""

    def __init__(self, container_id: str, path: str | None, log_format: str | None) -> None:
        self.container_id, self.path, self.format = container_id, path, log_format

    def options(self) -> list[str]:
        """The runtime's own --log options, for a runtime call of ours that belongs to this one."""
        return [*(["--log", self.path] if self.path else []), *(["--log-format", self.format] if self.format else [])]

    def error(self, message: str) -> None:
        self._say("error", message)

    def warning(self, message: str) -> None:
        self._say("warning", message)

    def _say(self, level: str, message: str) -> None:
        say(level, f"container {self.container_id}: {message}")
        if not self.path:
            return
        line = f"syscage: {level}: container {self.container_id}: {message}"
        try:
            with open(self.path, "a") as f:
                if self.format == "json":
                    import json
                    from datetime import UTC, datetime

                    stamp = datetime.now(UTC).isoformat()
                    f.write(json.dumps({"level": level, "msg": line, "time": stamp}) + "\n")
                else:
                    f.write(line + "\n")
        except OSError:
            return
