"""Recording a finished learning run: ask the tracer to merge what it saw into the profile, or, when no
tracer can answer, record the run as incomplete ourselves. Used by the poststop hook and by
syscage-runtime's `delete` (the containerd path, where no poststop hook process is needed)."""

from __future__ import annotations

import time

from syscage.console import say_warning
from syscage.errors import SyscageError
from syscage.hooks.protocol import TracerLost, TracerUnavailable, call

TYPE_CHECKING = False  # as typing.TYPE_CHECKING, without importing typing on syscage-runtime's delete
if TYPE_CHECKING:
    from typing import Any

    from syscage.config import Config


def record_timeout(config: Config) -> float:
    """How long to wait for the tracer's merge: within the runtime's hook timeout."""
    return max(config.hook_timeout - 5, 5)


def record_run(container_id: str, profile: str, mode: str, runtime_exe: str, component: str, *,
               socket_path: str, timeout: float, config: Config | None = None, key: str = "") -> dict[str, Any]:
    """The tracer's reply ({"ok", "complete", "problems"}), after a warning on stderr if the run is incomplete;
    raises SyscageError if the run was not recorded. key: the container's watch key
    (syscage.hooks.protocol.watch_key); the tracer hands over a watch only to the record that names it.

    The config is loaded only if the tracer cannot be asked (syscage-runtime's delete passes the socket and
    timeout it wrote into the learning marker, and spares itself the config loader on the usual path)."""
    asked_at = time.time()
    message = {"op": "record", "container_id": container_id, "profile": profile, "mode": mode,
               "runtime_exe": runtime_exe, "key": key}
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
        doc = ProfileStore.of(config).read(profile)
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
    from syscage.hooks.liveness import live_instance
    from syscage.hooks.observe import runtime_version, untraced_observation
    from syscage.jsonlog import JsonLog
    from syscage.store import ProfileStore

    store = ProfileStore.of(config)
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
