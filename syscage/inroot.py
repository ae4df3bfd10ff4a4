"""Read a file of a container's root file system as the container sees it, without ever leaving it.

The paths come from the container (what it exec'd): a symlink in its rootfs may point anywhere (`/` means its
root, `..` stops at it). openat2(RESOLVE_IN_ROOT) makes the kernel resolve every component, symlinks included,
inside the root directory, with no race between a check and the open; magic links (/proc/self/...) are refused.
Only regular files are read, up to a size cap, without blocking (a FIFO would hang a plain open).
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from pathlib import Path

SYS_OPENAT2 = 437  # x86-64
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class NotReadable(Exception):
    """The path is not a regular file of the root (absent, a directory, too large, unreadable)."""

    def __init__(self, path: str, reason: str, absent: bool = False) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.absent = path, reason, absent


class ContainerRoot:
    """A container's root directory, held open; `read` resolves paths inside it."""

    def __init__(self, rootfs: Path) -> None:
        self.rootfs = rootfs
        self.fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.real = os.path.realpath(rootfs)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> ContainerRoot:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _open(self, path: str) -> int:
        how = _OpenHow(os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY, 0,
                       RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        fd = _libc.syscall(SYS_OPENAT2, self.fd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
        if fd < 0:
            err = ctypes.get_errno()
            raise NotReadable(path, os.strerror(err), absent=err in (errno.ENOENT, errno.ENOTDIR))
        return int(fd)

    def read(self, path: str, cap: int) -> tuple[bytes, str]:
        """(content, the path it resolved to inside the root) of a regular file of at most `cap` bytes."""
        fd = self._open(path)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise NotReadable(path, "not a regular file", absent=stat.S_ISDIR(info.st_mode))
            if info.st_size > cap:
                raise NotReadable(path, f"larger than {cap >> 20} MiB (not analysed)")
            chunks, size = [], 0
            while size <= cap:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            if size > cap:
                raise NotReadable(path, f"larger than {cap >> 20} MiB (not analysed)")
            return b"".join(chunks), self._inside_name(fd, path)
        except OSError as exc:
            raise NotReadable(path, exc.strerror or str(exc)) from None
        finally:
            os.close(fd)

    def exists(self, path: str) -> bool:
        try:
            fd = self._open(path)
        except NotReadable:
            return False
        try:
            return stat.S_ISREG(os.fstat(fd).st_mode)
        finally:
            os.close(fd)

    def _inside_name(self, fd: int, path: str) -> str:
        """The container path the open file has (its symlinks resolved), for naming it; `path` if unknown."""
        try:
            host = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return path
        if self.real == "/":
            return host
        if host.startswith(self.real + "/"):
            return host[len(self.real):]
        return path
