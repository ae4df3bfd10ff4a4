"""Is a tracer running (or starting)? It holds an exclusive flock on <run_dir>/tracer.lock from its start,
through its BPF compile, to its exit. Only `os` and `fcntl`: the wrapper asks on the container's start path."""

from __future__ import annotations

import fcntl
import os

LOCK_FILE = "tracer.lock"


def tracer_lock_held(run_dir: os.PathLike[str] | str) -> bool:
    try:
        fd = os.open(os.path.join(run_dir, LOCK_FILE), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe lock if we got it
    return False
