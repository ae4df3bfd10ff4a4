"""Read the few config keys the wrappers need on their fast path, without the full config loader.

The two values are cached (syscage.configcache): parsing TOML would cost every runtime call more than the
rest of its work, most of it importing the parser.

A config that cannot be read falls back to defaults with a warning on stderr: a typo in syscage's
config must not take down containers that never asked for syscage. (Annotated containers go on to
the full loader, which refuses a broken config with a precise message.)
"""

from __future__ import annotations

import os

from syscage import configcache, standard
from syscage.console import say_warning

# The full loader's defaults for these keys (syscage.config builds its own from the same module).
DEFAULTS = {("runtime", "path"): standard.RUNTIME_PATH, ("paths", "run_dir"): standard.RUN_DIR}
KIND = "keys"


def read_keys() -> dict[tuple[str, str], str]:
    path = os.environ.get(standard.CONFIG_ENV) or standard.CONFIG_FILE
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError:
        return dict(DEFAULTS)
    cache = configcache.cache_path(path, KIND)
    values = _from_cache(configcache.read_cache(cache, text))
    if values is None:
        values = _parse(path, text)
        if values is None:
            return dict(DEFAULTS)
        body = f"{values[('runtime', 'path')]}\n{values[('paths', 'run_dir')]}\n"
        if body.count("\n") == 2:  # a newline inside a value would shift the lines: never cache that
            configcache.write_cache(cache, text, body)
    return values


def _from_cache(body: str | None) -> dict[tuple[str, str], str] | None:
    lines = (body or "").split("\n")
    if len(lines) < 2 or not all(v.startswith("/") for v in lines[:2]):
        return None
    return {("runtime", "path"): lines[0], ("paths", "run_dir"): lines[1]}


def _parse(path: str, raw: bytes) -> dict[tuple[str, str], str] | None:
    """The values, or None (after a warning) for a config that cannot be parsed: that is never cached."""
    # Always the real parser (its result is cached): a shortcut on the raw text such as "no `[runtime]`
    # in it, so defaults" misread valid TOML (`[ runtime ]`, `runtime.path = ...`, quoted keys).
    values = dict(DEFAULTS)
    try:
        import tomli

        doc = tomli.loads(raw.decode())
    except (ValueError, UnicodeDecodeError, RecursionError):
        say_warning(f"cannot parse {path}; using defaults for the runtime path")
        return None
    for (table, key), default in DEFAULTS.items():
        value = doc.get(table, {}).get(key, default) if isinstance(doc.get(table), dict) else default
        values[(table, key)] = value if isinstance(value, str) and value.startswith("/") else default
    return values
