"""The tracer's client: connect to it, or start it and wait until it is attached; hand it a starting container
(ask_to_watch, with learn.on_tracer_error applied); record a finished learning run (record_run), or, when no
tracer can answer, record the run as incomplete ourselves. Used by the prestart and poststop hooks, by
syscage-runtime's prestart relay and `delete` (the containerd path, where no poststop hook process is needed).
The requests themselves, and asking a running tracer, are syscage.protocol's (the CLI uses that alone)."""

from __future__ import annotations

import os
import select
import sys
import time

from syscage.console import say_warning
from syscage.errors import SyscageError
from syscage.liveness import live_instance, tracer_lock_held
from syscage.locks import flocked
from syscage.protocol import READY_FD_ENV, STATUS, Record, TracerLost, TracerUnavailable, Watch, call, request
from syscage.standard import STANDARD_PATH

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing on syscage-runtime's delete
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from syscage.config import Config

__all__ = ["TracerLost", "TracerUnavailable", "ask_to_watch", "record_run", "record_timeout", "request",
           "request_starting_tracer", "start_tracer", "start_tracer_in_background"]


def request_starting_tracer(config: Config, message: dict[str, Any]) -> dict[str, Any]:
    """Send `message`, starting the tracer first if none runs; waits for the BPF compile if needed."""
    deadline = time.monotonic() + config.start_timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            return request(config, message)
        except TracerUnavailable as exc:
            last_error = str(exc)
        try:
            start_tracer(config, deadline)
        except OSError as exc:
            raise SyscageError(f"cannot start the tracer: {exc}", f"check paths.run_dir ({config.run_dir})") from None
    raise SyscageError(f"tracer did not answer within {config.start_timeout:g}s ({last_error})",
                       f"see {config.log_file} and {config.run_dir / 'tracer.out'}")


def start_tracer(config: Config, deadline: float) -> None:
    """Start a tracer unless one is starting or running; return when it is ready (or has failed)."""
    with _spawn_lock(config):  # one caller spawns; the others wait here, then connect
        if _tracer_answers(config):
            return
        if tracer_lock_held(config.run_dir):  # started (by the wrapper or a peer) and still compiling
            _wait_for_socket(config, deadline)
            return
        read_fd, write_fd = os.pipe()
        try:
            _spawn_detached(config, write_fd)
        finally:
            os.close(write_fd)
        try:
            message = _read_ready(read_fd, deadline)
        finally:
            os.close(read_fd)
    if message.startswith("error"):
        raise SyscageError(f"tracer failed to start: {message[6:].strip()}",
                           f"see {config.run_dir / 'tracer.out'}")


def start_tracer_in_background(config: Config) -> None:
    """Start a tracer, if none runs, without waiting for its BPF compile.

    syscage-runtime calls this before it execs the runtime for a learning container: the compile
    overlaps with the runtime's container set-up, and the tracer is not a descendant of the runtime
    (`crun run` waits for every descendant to exit before it returns).
    """
    try:
        with _spawn_lock(config):
            if not tracer_lock_held(config.run_dir) and not _tracer_answers(config):
                _spawn_detached(config, None)
    except OSError:
        pass  # the prestart hook tries again, and reports what fails


def _spawn_lock(config: Config) -> flocked:
    config.run_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    return flocked(config.run_dir / "spawn.lock")


def _tracer_answers(config: Config) -> bool:
    try:
        request(config, STATUS, timeout=5)
    except TracerUnavailable:
        return False
    return True


def _wait_for_socket(config: Config, deadline: float) -> None:
    while time.monotonic() < deadline:
        if _tracer_answers(config):
            return
        if not tracer_lock_held(config.run_dir):
            return  # it died while starting: the caller's retry loop spawns a new one
        time.sleep(0.02)


def _spawn_detached(config: Config, ready_fd: int | None) -> None:
    """Start the tracer as an orphan in a session of its own (fork, spawn, exit), holding none of our
    descriptors: a runtime waits for a hook's stdout and stderr to close."""
    env = {k: v for k, v in os.environ.items() if k in ("SYSCAGE_CONFIG", "PATH", "LANG")}
    env.setdefault("PATH", STANDARD_PATH)
    if ready_fd is not None:
        env[READY_FD_ENV] = str(ready_fd)
    out = os.open(config.run_dir / "tracer.out", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        child = os.fork()
        if child == 0:  # the intermediate: start the tracer, then leave it to be adopted
            try:
                import subprocess  # here only: its imports would cost every hook

                subprocess.Popen([sys.executable, "-m", "syscage.hooks.daemon.tracer"], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=out, pass_fds=() if ready_fd is None else (ready_fd,),
                                 start_new_session=True, env=env, cwd="/")
            finally:
                os._exit(0)
        os.waitpid(child, 0)
    finally:
        os.close(out)


def _read_ready(fd: int, deadline: float) -> str:
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "".join(chunks)
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:  # closed: either after "ready", or the tracer died
            return "".join(chunks) or "error: the tracer exited during start-up"
        chunks.append(chunk.decode(errors="replace"))


def ask_to_watch(config: Config, watch: Watch, component: str,
                 warn: Callable[[str], None] | None = None) -> None:
    """Returns once the tracer watches the container, or (policy "run") after a warning that it runs
    untraced (say_warning, or `warn`); raises SyscageError when the tracer fails and the policy is "fail"."""
    from syscage.jsonlog import JsonLog

    container_id = watch.container_id
    try:
        reply = request_starting_tracer(config, watch.message())
        if not reply.get("ok"):
            raise SyscageError(str(reply.get("error")), "see the tracer's log")
    except SyscageError as exc:
        if config.on_tracer_error == "fail":
            raise
        JsonLog.of(config, component).log(
            "warning", "container runs untraced", error=str(exc), phase="prestart", container_id=container_id,
            profile=watch.profile, mode=watch.mode)
        if warn is not None:
            warn(f"runs untraced: {exc}; its run will be recorded as incomplete")
        else:
            say_warning(f"container {container_id} runs untraced: {exc}; its run will be recorded as incomplete")
    # success is logged by the tracer ("watching")


def record_timeout(config: Config) -> float:
    """How long to wait for the tracer's merge: within the runtime's hook timeout."""
    return max(config.hook_timeout - 5, 5)


def record_run(container_id: str, profile: str, mode: str, runtime_exe: str, component: str, *,
               socket_path: str, timeout: float, config: Config | None = None, key: str = "") -> dict[str, Any]:
    """The tracer's reply ({"ok", "complete", "problems"}), after a warning on stderr if the run is incomplete;
    raises SyscageError if the run was not recorded. key: the container's watch key
    (syscage.protocol.watch_key); the tracer hands over a watch only to the record that names it.

    The config is loaded only if the tracer cannot be asked (syscage-runtime's delete passes the socket and
    timeout it wrote into the learning marker, and spares itself the config loader on the usual path)."""
    asked_at = time.time()
    message = Record(container_id, profile, key, mode, runtime_exe).message()
    try:
        # The tracer merges and writes the profile durably before it answers.
        reply = call(socket_path, message, timeout)
    except TracerLost as exc:
        config = config or _load_config()
        # It may have written the run before it went: never record the same run twice.
        if run_recorded_since(config, profile, container_id, asked_at):
            return {"ok": True, "complete": True, "problems": []}
        reply = record_untraced(config, container_id, profile, mode, runtime_exe,
                                f"the tracer died while recording ({exc})", component, key)
    except TracerUnavailable as exc:
        config = config or _load_config()
        reply = record_untraced(config, container_id, profile, mode, runtime_exe,
                                f"the tracer was not running at poststop ({exc}): it died or was stopped", component,
                                key)
    if not reply.get("ok"):
        raise SyscageError(str(reply.get("error")), "see the syscage log (paths.log_file)")
    if not reply.get("complete"):
        say_warning(f"run of {container_id} is incomplete: {'; '.join(reply.get('problems', []))}")
    return reply


def _load_config() -> Config:
    from syscage.config import load_config

    return load_config()


def run_recorded_since(config: Config, profile: str, container_id: str, since: float) -> bool:
    from datetime import datetime

    from syscage.store import ProfileStore

    try:
        doc = ProfileStore.from_config(config).read(profile)
    except SyscageError:
        return False
    for run in (doc or {}).get("runs", [])[-50:]:
        stopped = str(run.get("stopped", "")).replace("Z", "+00:00")
        try:
            if run.get("container_id") == container_id and datetime.fromisoformat(stopped).timestamp() >= since - 1:
                return True
        except ValueError:
            continue
    return False


def record_untraced(config: Config, container_id: str, profile: str, mode: str, runtime_exe: str, problem: str,
                    component: str, key: str = "") -> dict[str, Any]:
    """No tracer to ask: record the run ourselves, as incomplete, so that the profile says so. The lost
    pending run of this very container (same id and key) is settled by it."""
    from syscage.hooks.daemon.observe import runtime_version, untraced_observation
    from syscage.jsonlog import JsonLog
    from syscage.store import ProfileStore

    store = ProfileStore.from_config(config)
    if store.run_recorded(profile, container_id, key):
        # Its tracer saved it when it stopped (or found it gone): the profile has it already, incomplete.
        return {"ok": True, "complete": False,
                "problems": ["its run was saved already, as incomplete, when its watch ended without it"]}
    obs = untraced_observation(container_id, runtime_version(runtime_exe) if runtime_exe else "", problem)
    ours = store.lost_run_of(profile, container_id, key, live_instance(config.run_dir))
    if ours:
        obs.started = str(ours.get("started") or "")
    try:
        store.record_run(profile, obs, pending=str(ours["id"]) if ours else None, key=key)
    except (OSError, SyscageError) as exc:
        # A full store: note the run where it fits (the run directory), so that the profile stays incomplete.
        store.note_unrecorded(profile, {"container_id": container_id, "key": key, "profile": profile,
                                        "started": obs.started, "error": str(exc)})
        raise
    JsonLog.of(config, component).log(
        "warning", "run recorded", complete=False, problems=obs.problems, phase="poststop",
        container_id=container_id, profile=profile, mode=mode)
    return {"ok": True, "complete": False, "problems": obs.problems}
