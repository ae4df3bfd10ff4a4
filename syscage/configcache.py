"""A small cache of what was parsed from the config file, for the processes on a container's start path.

Importing and running the TOML parser costs every such process a few ms; the cache files live in
CACHE_DIR, one per config path and kind, each starting with the config file's stat signature (device,
inode, size, mtime and ctime in ns), so an edited or replaced config is parsed again. A cache file is
trusted only if it belongs to us and nobody else can write it: syscage-runtime execs the runtime it names.
Only `os`: this is imported on syscage-runtime's passthrough path.
"""

from __future__ import annotations

import os

CACHE_DIR = "/run/syscage-runtime"


def signature(config_path: str) -> str:
    """Raises OSError (FileNotFoundError) when the config cannot be stat'ed."""
    st = os.stat(config_path)
    return f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"


def cache_path(config_path: str, kind: str) -> str:
    return os.path.join(CACHE_DIR, f"{config_path.replace('%', '%25').replace('/', '%2F')}.{kind}")


def read_cache(path: str, config_signature: str) -> str | None:
    """The cached text after the signature line, if the cache is ours, private and current."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    head, _, body = b"".join(chunks).decode(errors="replace").partition("\n")
    return body if head == config_signature else None


def write_cache(path: str, config_signature: str, body: str) -> None:
    """Best effort (temp + rename, so a reader never sees half a file): without it, every call parses."""
    temp = f"{path}.{os.getpid()}"
    try:
        os.makedirs(CACHE_DIR, mode=0o700, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, f"{config_signature}\n{body}".encode())
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            return
