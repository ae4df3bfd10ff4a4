"""syscage-runtime `delete` of a container that was created learning: delete it with the real runtime,
then record its run, as the poststop hook would have, without starting a hook process for it.

The exit code is the runtime's: once the container is deleted, a failure to record is reported on
stderr and in the log (and the run is recorded as incomplete where possible), as runc does with a
failing poststop hook."""

from __future__ import annotations

from syscage.console import say_error
from syscage.shim.child import spawn_runtime, wait_runtime
from syscage.shim.markers import claim_marker, container_exists, read_marker, remove_marker


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
    from syscage.hooks.record import record_run

    profile, mode = str(learning["profile"]), str(learning["mode"])
    timeout = learning["timeout"]
    assert isinstance(timeout, (int, float))
    try:
        record_run(container_id, profile, mode, runtime, "runtime", socket_path=str(learning["socket"]),
                   timeout=float(timeout))
    except (SyscageError, OSError) as exc:
        from syscage.jsonlog import log_event

        say_error(f"recording the run of container {container_id} into profile {profile} failed: {exc}")
        log_event(None, "runtime", "error", "run not recorded", container_id=container_id, profile=profile,
                  error=str(exc))
