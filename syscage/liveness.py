"""Is a tracer running (or starting)? It holds an exclusive flock on <run_dir>/tracer.lock from its start,
through its BPF compile, to its exit, and writes its instance id to <run_dir>/tracer.instance as soon as it
holds the lock. Only `os` and `fcntl`: the wrapper asks on the container's start path."""

from __future__ import annotations

import fcntl
import os

LOCK_FILE = "tracer.lock"
INSTANCE_FILE = "tracer.instance"


def tracer_lock_held(run_dir: os.PathLike[str] | str) -> bool:
    try:
        fd = os.open(os.path.join(run_dir, LOCK_FILE), os.O_RDWR | os.O_CLOEXEC)
    except OSError:  # none there (or a run_dir that is not a directory): no tracer
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe lock if we got it
    return False


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
