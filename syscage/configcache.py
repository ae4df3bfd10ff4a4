"""A small cache of what was parsed from the config file, for the processes on a container's start path.

Importing and running the TOML parser costs every such process a few ms; the cache files live in
CACHE_DIR, one per config path and kind, each holding a copy of the config text it was parsed from: a
cache is used only while the config file reads exactly the same (timestamps are too coarse to tell two
quick edits apart). A cache file is trusted only if it belongs to us and nobody else can write it:
syscage-runtime execs the runtime it names. Only `os`: this is imported on syscage-runtime's passthrough
path.
"""

from __future__ import annotations

import os

CACHE_DIR = "/run/syscage-runtime"


def cache_path(config_path: str, kind: str) -> str:
    return os.path.join(CACHE_DIR, f"{config_path.replace('%', '%25').replace('/', '%2F')}.{kind}")


def read_cache(path: str, config_text: bytes) -> str | None:
    """What was cached for `config_text`, if the cache is ours, private and made from that very text."""
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
    data = b"".join(chunks)
    head, _, rest = data.partition(b"\n")
    if not head.isdigit() or rest[:int(head)] != config_text or int(head) != len(config_text):
        return None
    return rest[len(config_text):].decode(errors="replace")


def write_cache(path: str, config_text: bytes, body: str) -> None:
    """Best effort (atomically, so a reader never sees half a file): without it, every call parses."""
    from syscage.atomic import write_atomically

    try:
        os.makedirs(CACHE_DIR, mode=0o700, exist_ok=True)
        write_atomically(path, b"%d\n%s%s" % (len(config_text), config_text, body.encode()), 0o600, durable=False)
    except OSError:
        return
