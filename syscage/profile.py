"""The learned profile: a versioned JSON document, and how one run's observations merge into it.

Merging is a union: a syscall seen once stays allowed. Each syscall keeps its provenance (first and
last time seen, in how many runs, in how many of them it was observed (`seen_runs`), and whether it was
observed or added from a runtime base set), the profile how far learning has converged
(`convergence`, see syscage.convergence), and
each run keeps a record (container, times, runtime, kernel, cut-over kind, counters of anything lost).
A run with problems makes the whole profile incomplete until an operator accepts it.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

from syscage import convergence
from syscage.config import KERNEL_ASYNCHRONOUS
from syscage.profile_schema import KIND, SCHEMA_VERSION, check_profile

__all__ = ["KIND", "SCHEMA_VERSION", "Observation", "accept", "check_profile", "merge", "new_profile"]


SOURCE_OBSERVED = "observed"
SOURCE_RUNTIME_BASE = "runtime-base"
SOURCE_FLOOR = "floor"  # seccomp.always_allow: allowed whether seen or not
SOURCE_KERNEL = "kernel"  # the kernel's asynchronous syscalls (restart_syscall): in every profile

# Sections later tracers fill (AppArmor paths, sockets, capabilities, argument-level rules). They are
# in the schema now so that version 1 profiles stay readable when they arrive.
RESERVED_SECTIONS = ("files", "network", "capabilities", "arguments")

# Run records kept in profile.json: the newest ones. Without a bound the file grows with every run, and
# enforce reads it on every container start. What older runs saw stays in each syscall's provenance
# (first_seen, last_seen, runs), and `runs_total` counts every run ever merged.
MAX_RUN_RECORDS = 100
# Likewise the reasons a profile is incomplete: the newest ones (each names its run).
MAX_INCOMPLETE_REASONS = 100


@dataclass
class Observation:
    """What one container did, as the tracer reported it at poststop."""

    container_id: str
    started: str
    stopped: str
    cutover: str  # "seccomp", "exec" or "none"
    runtime: str = ""
    kernel: str = ""
    syscalls: list[str] = field(default_factory=list)
    unresolved: list[int] = field(default_factory=list)
    runtime_base: list[str] = field(default_factory=list)
    # Syscalls seen after the cut-over but before the workload's first execve: the runtime's own.
    pre_exec: list[str] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    # The spec's process.noNewPrivileges: runc loads the filter at a different point with and without it,
    # so a profile covers only the values its runs had (None: not known, e.g. an untraced run).
    no_new_privileges: bool | None = None
    # AppArmor sections (syscage.apparmor): path -> access kinds, "FAMILY TYPE", capability names; each
    # *_traced says whether the run recorded that kind completely.
    files: dict[str, list[str]] = field(default_factory=dict)
    network: list[str] = field(default_factory=list)
    capabilities: list[str] = field(default_factory=list)
    files_traced: bool = False
    network_traced: bool = False
    capabilities_traced: bool = False
    # Learned arguments (syscage.arguments): syscall -> {"values": [...]} or {"unconditional": why}; None: the
    # tracer did not record them (its conditioned syscalls are then allowed with any argument).
    arguments: dict[str, dict[str, Any]] | None = None

    @property
    def complete(self) -> bool:
        return not self.problems


def new_profile(name: str, arch: str, now: str) -> dict[str, Any]:
    profile: dict[str, Any] = {
        "kind": KIND,
        "schema": SCHEMA_VERSION,
        "name": name,
        "arch": arch,
        "created": now,
        "updated": now,
        "revision": 0,
        "complete": True,
        "incomplete_reasons": [],
        "syscalls": {},
        "unresolved_syscalls": {},
        "runs": [],
    }
    for section in RESERVED_SECTIONS:
        profile[section] = {}
    return profile


def merge(profile: dict[str, Any], obs: Observation, now: str, floor: tuple[str, ...] = ()) -> dict[str, Any]:
    """Return a new profile: `profile` with `obs` merged in, and the always-allowed `floor`. The input is not
    modified: what changes is copied (the two syscall tables, the entries a run touches, the lists), the
    rest is shared; a deep copy of a profile with its run history was a third of the tracer's work per
    recorded run."""
    out = dict(profile)
    out["syscalls"] = dict(profile["syscalls"])
    out["unresolved_syscalls"] = dict(profile["unresolved_syscalls"])
    out["incomplete_reasons"] = list(profile["incomplete_reasons"])
    observed, base, kernel = set(obs.syscalls), set(obs.runtime_base), set(KERNEL_ASYNCHRONOUS)
    # New: not allowed before. A runtime-base or floor entry a run now observes (a Go runtime's preemption signal
    # caught this time) was allowed all along, so it does not restart the convergence count.
    new = sorted(observed - set(profile["syscalls"]))
    out["convergence"] = convergence.advance(profile, new, obs.complete, obs.started, obs.stopped)
    for name in sorted(observed | base | kernel | set(floor)):
        source = (SOURCE_OBSERVED if name in observed else SOURCE_RUNTIME_BASE if name in base
                  else SOURCE_KERNEL if name in kernel else SOURCE_FLOOR)
        _note(out["syscalls"], name, source, obs.stopped, seen=name in observed)
    for nr in obs.unresolved:
        _note(out["unresolved_syscalls"], str(nr), SOURCE_OBSERVED, obs.stopped)
    _merge_apparmor(out, obs)
    _merge_arguments(out, profile, obs, floor)
    run = asdict(obs)
    for bulky in ("syscalls", "unresolved", "runtime_base", "files", "network", "capabilities", "arguments"):
        del run[bulky]
    run["complete"] = obs.complete
    run["syscall_count"] = len(observed)
    out["runs_total"] = int(out.get("runs_total", len(out["runs"]))) + 1
    out["runs"] = [*out["runs"], run][-MAX_RUN_RECORDS:]
    if not obs.complete:
        out["complete"] = False
        out["incomplete_reasons"].extend(f"run of {obs.container_id} at {obs.stopped}: {p}" for p in obs.problems)
    if obs.unresolved:
        out["complete"] = False
        out["incomplete_reasons"].append(
            f"run of {obs.container_id}: syscall numbers {obs.unresolved} have no name in this libseccomp"
            " and cannot be allowed in seccomp.json")
    out["incomplete_reasons"] = out["incomplete_reasons"][-MAX_INCOMPLETE_REASONS:]
    out["updated"] = now
    out["revision"] = int(out.get("revision", 0)) + 1
    return out


def accept(profile: dict[str, Any], now: str) -> dict[str, Any]:
    """An operator vouches for an incomplete profile: it becomes enforceable; the reasons stay in history."""
    out = copy.deepcopy(profile)
    if not out["complete"]:
        out.setdefault("accepted", []).append({"at": now, "reasons": out["incomplete_reasons"]})
    out["complete"] = True
    out["incomplete_reasons"] = []
    out["updated"] = now
    out["revision"] = int(out.get("revision", 0)) + 1
    return out


def _note(table: dict[str, Any], key: str, source: str, when: str, seen: bool | None = None) -> None:
    """Count one more run for `key` in `table` (a copy of the input's table; its entries are the input's
    own, so the one that changes is replaced by a copy). seen: whether the run observed it (counted in
    `seen_runs`, the convergence share; None: not counted, for unnamed numbers)."""
    entry = table.get(key)
    if entry is None:
        table[key] = {"first_seen": when, "last_seen": when, "runs": 1, "sources": [source]}
        if seen is not None:
            table[key]["seen_runs"] = int(seen)
        return
    entry = table[key] = dict(entry)
    if seen is not None:
        entry["seen_runs"] = convergence.seen_runs(entry) + int(seen)
    entry["last_seen"] = max(entry["last_seen"], when)
    entry["first_seen"] = min(entry["first_seen"], when)
    entry["runs"] += 1
    if source not in entry["sources"]:
        entry["sources"] = sorted([*entry["sources"], source])


APPARMOR_KINDS = ("files", "network", "capabilities")


def _merge_apparmor(out: dict[str, Any], obs: Observation) -> None:
    """Union the AppArmor sections; AND the *_traced flags over every run (the first run sets them: a
    profile merged before these sections existed has runs and no flags, and stays untraced)."""
    first = not out["runs"] and not int(out.get("runs_total", 0))
    for kind in APPARMOR_KINDS:
        flag = f"{kind}_traced"
        out[flag] = bool(getattr(obs, flag)) and (first or bool(out.get(flag, False)))
        table = out[kind] = dict(out.get(kind, {}))
        items = obs.files.items() if kind == "files" else ((k, None) for k in getattr(obs, kind))
        for key, access in items:
            entry = table.get(key)
            if entry is None:
                entry = {"first_run": obs.container_id, "first_seen": obs.stopped, "runs": 0}
            else:
                entry = dict(entry)
                if (obs.stopped, obs.container_id) < (entry["first_seen"], entry["first_run"]):
                    entry["first_run"], entry["first_seen"] = obs.container_id, obs.stopped
            entry["runs"] += 1
            if access is not None:
                entry["access"] = sorted(set(entry.get("access", [])) | set(access), key="rwacdlkxm".index)
            table[key] = entry


def _merge_arguments(out: dict[str, Any], before: dict[str, Any], obs: Observation, floor: tuple[str, ...]) -> None:
    """Union the learned argument values (syscage.arguments). A syscall stays conditioned only while every
    run that allowed it recorded its values: allowed before without an entry (a profile learned before
    arguments were), added from a runtime base set, made by a run that did not record it, or with too many
    values, and it is unconditional from then on, saying which run made it so."""
    from syscage.arguments import ARGUMENTS, CLONE3_AS

    table = out["arguments"] = dict(before.get("arguments") or {})
    observed, base, had = set(obs.syscalls), set(obs.runtime_base), set(before["syscalls"])
    for entry in ARGUMENTS:
        name = entry.syscall
        names = {name, "clone3"} if name == CLONE3_AS else {name}  # clone3's flags are recorded as clone's
        made, added = bool(names & observed), bool(names & (base - observed))
        if not (made or added) or name in floor:
            continue
        section = table.get(name)
        if section is None and names & had:
            continue  # allowed with any argument already: it stays so
        if section is not None and section.get("unconditional"):
            continue
        got = (obs.arguments or {}).get(name)
        why = (f"added from the runtime's base set by run {obs.container_id}: its values are not known" if added
               else f"run {obs.container_id} did not record its arguments" if got is None
               else f"run {obs.container_id}: {got['unconditional']}" if got.get("unconditional")
               else f"run {obs.container_id} made it but no value was recorded" if not got.get("values") else None)
        if why:
            table[name] = {"index": entry.index, "unconditional": why, "run": obs.container_id}
            continue
        values = dict((section or {}).get("values", {}))
        for value in got["values"]:
            values.setdefault(str(value), {"first_run": obs.container_id, "first_seen": obs.stopped})
        table[name] = {"index": entry.index, "kind": entry.kind, "mask": entry.mask, "values": values}
