"""The measured runtime base sets (config/base/RUNTIME.json): what a runtime does between loading the
container's filter and exec'ing the workload. Standard library only: enforce reads them on the start path."""

from __future__ import annotations

import json
from importlib import resources


def runtime_base(runtime_name: str) -> dict[str, list[str]] | None:
    """Measured syscalls `runtime_name` makes between loading a filter and exec'ing the workload (see
    tools/measure_runtime_base.py): `no_new_privileges` / `new_privileges` sets and the
    `asynchronous` set a Go runtime may add at any time."""
    if not runtime_name or "/" in runtime_name or runtime_name.startswith("."):
        return None
    try:
        raw = resources.files("syscage.defaults").joinpath("base", f"{runtime_name}.json").read_text()
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        return None
    doc = json.loads(raw)
    return {k: list(doc.get(k, [])) for k in ("no_new_privileges", "new_privileges", "asynchronous")}
