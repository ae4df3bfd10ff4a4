"""Read the few config keys the wrappers need on their fast path, without the full config loader.

Parsing TOML costs every runtime call ~8 ms (importing the parser is most of it), so the two values
are cached in CACHE_DIR, keyed by the config file's path and validated against its stat (device, inode,
size, mtime and ctime in ns): an edited or replaced config is parsed again. The cache is used only if
it belongs to us and nobody else can write it, since it names the runtime we exec.

A config that cannot be read falls back to defaults with a warning on stderr: a typo in syscage's
config must not take down containers that never asked for syscage. (Annotated containers go on to
the full loader, which refuses a broken config with a precise message.)
"""

from __future__ import annotations

import os
import sys

DEFAULT_CONFIG = "/etc/syscage/config.toml"
DEFAULTS = {("runtime", "path"): "/usr/sbin/runc", ("paths", "run_dir"): "/run/syscage"}
CACHE_DIR = "/run/syscage-runtime"


def read_keys() -> dict[tuple[str, str], str]:
    path = os.environ.get("SYSCAGE_CONFIG") or DEFAULT_CONFIG
    try:
        st = os.stat(path)
    except OSError:
        return dict(DEFAULTS)
    signature = f"{st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns}"
    cache = os.path.join(CACHE_DIR, path.replace("%", "%25").replace("/", "%2F"))
    values = _read_cache(cache, signature)
    if values is None:
        values = _parse(path)
        if values is not None:
            _write_cache(cache, signature, values)
    return values or dict(DEFAULTS)


def _parse(path: str) -> dict[tuple[str, str], str] | None:
    """The values, or None (after a warning) for a config that cannot be read: that is never cached."""
    values = dict(DEFAULTS)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    if not any(f"[{table}]".encode() in raw for table, _ in DEFAULTS):
        return values
    try:
        import tomli

        doc = tomli.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
        sys.stderr.write(f"syscage: warning: cannot parse {path}; using defaults for the runtime path\n")
        return None
    for (table, key), default in DEFAULTS.items():
        value = doc.get(table, {}).get(key, default) if isinstance(doc.get(table), dict) else default
        values[(table, key)] = value if isinstance(value, str) and value.startswith("/") else default
    return values


def _read_cache(cache: str, signature: str) -> dict[tuple[str, str], str] | None:
    try:
        fd = os.open(cache, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None
        lines = os.read(fd, 8192).decode(errors="replace").split("\n")
    finally:
        os.close(fd)
    if len(lines) < 3 or lines[0] != signature or not all(v.startswith("/") for v in lines[1:3]):
        return None
    return {("runtime", "path"): lines[1], ("paths", "run_dir"): lines[2]}


def _write_cache(cache: str, signature: str, values: dict[tuple[str, str], str]) -> None:
    """Best effort (temp + rename, so a reader never sees half a file): without it every call parses."""
    body = f"{signature}\n{values[('runtime', 'path')]}\n{values[('paths', 'run_dir')]}\n"
    if "\n" in "".join(values.values()):
        return
    temp = f"{cache}.{os.getpid()}"
    try:
        os.makedirs(CACHE_DIR, mode=0o700, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, body.encode())
        finally:
            os.close(fd)
        os.replace(temp, cache)
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            return
