"""flock(2) locks on files: hold one for a block, take one for a process's life, or ask whether someone
holds one. Only `os` and `fcntl` at import: the wrapper and the hooks take them on the container's start path."""

from __future__ import annotations

import fcntl
import os

FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def open_locked(path: os.PathLike[str] | str, blocking: bool = True, mode: int = 0o600,
                create: bool = True) -> int | None:
    """A descriptor of `path` (created if missing) holding its exclusive lock, or None when someone else
    holds it and `blocking` is False (or, with create=False, when there is no such file). The lock goes with
    the descriptor (close it, or exit)."""
    try:
        fd = os.open(path, FLAGS if create else FLAGS & ~os.O_CREAT, mode)
    except FileNotFoundError:
        if create:
            raise
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock_held(path: os.PathLike[str] | str) -> bool:
    """Does a live process hold `path`'s lock? A missing file (or a path that cannot be opened) is no."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe lock if we got it
    return False


class flocked:
    """`with flocked(path) as fd:` holds `path`'s exclusive lock (waiting for it) for the block."""

    def __init__(self, path: os.PathLike[str] | str, mode: int = 0o600) -> None:
        self.path, self.mode, self.fd = path, mode, -1

    def __enter__(self) -> int:
        fd = open_locked(self.path, True, self.mode)
        if fd is None:  # a blocking lock waits instead: said for the type checker
            raise BlockingIOError(f"{self.path} is locked")
        self.fd = fd
        return fd

    def __exit__(self, *_: object) -> None:
        os.close(self.fd)
