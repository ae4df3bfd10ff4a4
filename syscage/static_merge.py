"""A profile's static set grows run by run: each learning run's analysis (what the programs it exec'd, and the
libraries they map, can make) is merged into it. Pure: the store calls it under the profile's lock."""

from __future__ import annotations

from typing import Any

MAX_PLACES = 8  # where a syscall came from, per syscall
MAX_LISTED = 64  # unresolved and absent paths named; the rest are counted
MAX_PROGRAMS = 256


def merge_static(current: dict[str, Any] | None, run: dict[str, Any], container_id: str, now: str) -> dict[str, Any]:
    """`current` (the profile's static section, or None) with one run's static set added."""
    base = current if isinstance(current, dict) else {}
    syscalls = {name: list(where) for name, where in (base.get("syscalls") or {}).items()}
    for name, where in run["syscalls"].items():
        places = syscalls.setdefault(name, [])
        for place in where:
            if place not in places and len(places) < MAX_PLACES:
                places.append(place)
    unresolved = dict(base.get("unresolved") or {})
    for path, why in run.get("unresolved", {}).items():
        if path in unresolved or len(unresolved) < MAX_LISTED:
            unresolved[path] = why
    absent = list(base.get("absent") or [])
    absent += [p for p in run.get("absent", []) if p not in absent][:max(0, MAX_LISTED - len(absent))]
    programs = sorted(set(base.get("programs") or []) | set(run.get("programs", [])))[:MAX_PROGRAMS]
    return {**base, "source": "learning runs", "syscalls": dict(sorted(syscalls.items())),
            "binaries": {**(base.get("binaries") or {}), **run.get("binaries", {})}, "programs": programs,
            "unresolved": unresolved,
            "unresolved_total": int(base.get("unresolved_total") or 0) + int(run.get("unresolved_total") or 0),
            "absent": absent, "paths_lost": int(base.get("paths_lost") or 0) + int(run.get("paths_lost") or 0),
            "runs_analysed": int(base.get("runs_analysed") or 0) + 1,
            "last_run": container_id, "analysed": now}
