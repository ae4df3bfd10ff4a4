"""Checkpoints of a container still learning: what it did so far, in its profile before it stops.

A checkpoint is a run record marked `in_progress` (one per container: the next checkpoint, and then the final
record, replace it) plus the syscalls it saw that the profile did not have, as entries with source
"checkpoint", no run counted (`runs` 0) and the checkpoints that hold them (`checkpoint_of`). Counters and the
convergence record are left alone: the final record counts the run once. Such entries are allowed by the
rendered seccomp.json (a long-running service can be enforced elsewhere before it stops), and an export of a
profile with a run in progress is refused unless forced (syscage.travel).

If the tracer dies, the run is settled from its pending record at the next start: what the last checkpoint saw
is kept, as observed, and the run says that at most one checkpoint interval of it is missing.
Pure functions on profile documents; syscage.store calls them under the profile's lock.
"""

from __future__ import annotations

from typing import Any

SOURCE = "checkpoint"


def checkpoint_key(pending: str | None, key: str, container_id: str) -> str:
    """What ties a checkpoint to its run's record: the watch key, which every path that records the run knows
    (the tracer, the hook recording an untraced run, the tracer settling a lost one)."""
    return key or pending or container_id


def add_checkpoint(current: dict[str, Any], run: dict[str, Any], syscalls: list[str], ckey: str,
                   now: str) -> dict[str, Any]:
    """The profile with `run` (its in-progress record) replacing this container's previous checkpoint."""
    table = dict(current["syscalls"])
    for name in syscalls:
        entry = table.get(name)
        if entry is None:
            table[name] = {"first_seen": now, "last_seen": now, "runs": 0, "seen_runs": 0, "sources": [SOURCE],
                           "checkpoint_of": [ckey]}
        elif entry["sources"] == [SOURCE] and ckey not in entry.get("checkpoint_of", []):
            table[name] = {**entry, "last_seen": now, "checkpoint_of": sorted([*entry.get("checkpoint_of", []), ckey])}
    runs = [r for r in current["runs"] if not is_checkpoint_of(r, ckey)]
    return {**current, "syscalls": table, "runs": [*runs, {**run, "in_progress": True, "checkpoint": ckey}],
            "updated": now, "revision": int(current.get("revision", 0)) + 1}


def is_checkpoint_of(run: dict[str, Any], ckey: str) -> bool:
    return bool(run.get("in_progress")) and run.get("checkpoint") == ckey


def take_checkpoint(current: dict[str, Any], ckey: str) -> tuple[dict[str, Any], list[str], str | None]:
    """The profile without this container's checkpoint (its run record, and its hold on checkpoint entries:
    an entry no other checkpoint holds goes); the syscalls it held; when it was taken (None: none)."""
    taken = [r for r in current["runs"] if is_checkpoint_of(r, ckey)]
    if not taken:
        return current, [], None
    table, held = {}, []
    for name, entry in current["syscalls"].items():
        holders = entry.get("checkpoint_of")
        if entry["sources"] == [SOURCE] and isinstance(holders, list) and ckey in holders:
            held.append(name)
            others = [h for h in holders if h != ckey]
            if not others:
                continue
            entry = {**entry, "checkpoint_of": others}
        table[name] = entry
    out = {**current, "syscalls": table, "runs": [r for r in current["runs"] if not is_checkpoint_of(r, ckey)]}
    return out, sorted(held), str(taken[-1].get("stopped", ""))


def split_checkpoint_entries(profile: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the profile without other containers' checkpoint entries, those entries): merge() must not take a
    syscall only a checkpoint saw as known, or a run observing it would not count as bringing something new."""
    held = {n: e for n, e in profile["syscalls"].items() if e["sources"] == [SOURCE]}
    if not held:
        return profile, {}
    return {**profile, "syscalls": {n: e for n, e in profile["syscalls"].items() if n not in held}}, held
