"""Is a tracer running (or starting)? It holds an exclusive flock on <run_dir>/tracer.lock from its start,
through its BPF compile, to its exit, and writes its instance id to <run_dir>/tracer.instance as soon as it
holds the lock. Only `os` and `fcntl`: the wrapper asks on the container's start path."""

from __future__ import annotations

import os

from syscage.locks import lock_held

LOCK_FILE = "tracer.lock"
INSTANCE_FILE = "tracer.instance"


def tracer_lock_held(run_dir: os.PathLike[str] | str) -> bool:
    return lock_held(os.path.join(run_dir, LOCK_FILE))


def live_instance(run_dir: os.PathLike[str] | str) -> str | None:
    """The instance id of the running tracer, or None when none runs: pending runs of any other instance
    are lost (syscage.store)."""
    if not tracer_lock_held(run_dir):
        return None
    try:
        with open(os.path.join(run_dir, INSTANCE_FILE)) as f:
            return f.read().strip() or None
    except OSError:
        return None
