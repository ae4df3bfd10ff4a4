"""Replace a file so that readers and crashes see the old or the new content, never a mix.

Only `os`: the runtime wrapper rewrites a bundle's config.json with it on the container's start path,
where importing tempfile (random, shutil) alone would cost more than the rewrite.
"""

from __future__ import annotations

import contextlib
import os


def write_atomically(path: os.PathLike[str] | str, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """temp file (same directory) -> fsync -> rename -> fsync(directory). Not durable: no fsyncs, for files
    that may be lost in a crash (caches, and markers on tmpfs), where readers must still never see half."""
    path = os.fspath(path)
    directory, name = os.path.split(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = os.path.join(directory, f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        try:
            fd = os.open(tmp, flags, 0o600)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"no free temporary name beside {path}")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            if durable:
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if not durable:
        return
    dir_fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
