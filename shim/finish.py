"""syscage-runtime `delete` of a container that was created learning: delete it with the real runtime,
then record its run, as the poststop hook would have, without starting a hook process for it.

The exit code is the runtime's: once the container is deleted, a failure to record is reported in one
line on stderr and in the log, as runc does with a failing poststop hook; the run's pending record stays
in the store, so the profile is incomplete (`syscage show` says why).

Also: a learning `create` that failed after its prestart ran releases the tracer's watch (no container,
so no run)."""

from __future__ import annotations

from syscage.console import say_error
from syscage.markers import claim_marker, container_exists, read_marker, remove_marker
from syscage.shim.child import spawn_runtime, wait_runtime


def delete_and_record(runtime: str, args: list[str], marker: str, container_id: str,
                      runtime_root: str | None) -> int:
    """The runtime's exit code (minus a signal that killed it, for child.exit_like)."""
    code = wait_runtime(spawn_runtime(runtime, args))
    exists = container_exists(runtime, runtime_root, container_id)
    if exists or (exists is None and code != 0):
        return code  # not deleted (e.g. still running, without --force): the next delete records it
    # Gone, whatever the exit code says (runc removes its state before it reports some errors).
    claimed = claim_marker(marker)
    if claimed is None:
        return code  # a concurrent delete took it
    learning = read_marker(claimed, container_id, runtime_root)
    remove_marker(claimed)
    if learning is None:
        say_error(f"container {container_id}: unreadable learning marker {marker}; its run is not recorded "
                  "(the tracer saves it as incomplete once tracer.orphan_grace has passed)")
        return code
    record(runtime, container_id, learning)
    return code


def record(runtime: str, container_id: str, learning: dict[str, object]) -> None:
    from syscage.errors import SyscageError
    from syscage.hooks.client import record_run

    profile, mode = str(learning["profile"]), str(learning["mode"])
    try:
        record_run(container_id, profile, mode, runtime, "runtime", socket_path=str(learning["socket"]),
                   timeout=float(learning["timeout"]), key=marker_key(learning))  # type: ignore[arg-type]
    except (SyscageError, OSError) as exc:
        from syscage.jsonlog import JsonLog

        what = exc.what if isinstance(exc, SyscageError) else str(exc)
        say_error(f"container {container_id}: its run was not recorded ({' '.join(what.split())}); profile "
                  f"{profile} is incomplete until it is learned again or accepted (see `syscage show {profile}`)")
        JsonLog.of(None, "runtime").error("run not recorded", container_id=container_id, profile=profile,
                                          error=str(exc))


def marker_key(learning: dict[str, object]) -> str:
    from syscage.protocol import watch_key

    return watch_key(learning.get("nonce"), None)


def release_failed_create(marker: str, container_id: str, runtime_root: str | None) -> None:
    """The runtime's `create` failed after the prestart may have had the tracer watch the container: let
    the watch (and its pending run) go, and the marker. A tracer that cannot be asked keeps the watch until
    its cgroup is gone for tracer.orphan_grace (then saved as an incomplete run)."""
    learning = read_marker(marker, container_id, runtime_root)
    remove_marker(marker)
    if learning is None:
        return
    from syscage.protocol import Release, TracerUnavailable, call

    try:
        call(str(learning["socket"]), Release(container_id, marker_key(learning), str(learning["profile"])).message(),
             10.0)
    except TracerUnavailable:
        return
