"""Read the few config keys the wrappers need on their fast path, without the full config loader.

A config that cannot be read falls back to defaults with a warning on stderr: a typo in syscage's
config must not take down containers that never asked for syscage. (Annotated containers go on to
the full loader, which refuses a broken config with a precise message.)
"""

from __future__ import annotations

import os
import sys

DEFAULT_CONFIG = "/etc/syscage/config.toml"
DEFAULTS = {("runtime", "path"): "/usr/sbin/runc", ("paths", "run_dir"): "/run/syscage"}


def read_keys() -> dict[tuple[str, str], str]:
    path = os.environ.get("SYSCAGE_CONFIG") or DEFAULT_CONFIG
    values = dict(DEFAULTS)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return values
    if not any(f"[{table}]".encode() in raw for table, _ in DEFAULTS):
        return values
    try:
        import tomli

        doc = tomli.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
        sys.stderr.write(f"syscage: warning: cannot parse {path}; using defaults for the runtime path\n")
        return values
    for (table, key), default in DEFAULTS.items():
        value = doc.get(table, {}).get(key, default) if isinstance(doc.get(table), dict) else default
        values[(table, key)] = value if isinstance(value, str) and value.startswith("/") else default
    return values
