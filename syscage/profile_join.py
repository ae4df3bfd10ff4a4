"""Merging profiles learned on different nodes: a join that is commutative, associative and idempotent.

`join(a, b)` is the union of what both saw. Every field is joined by a rule that does not depend on the
order of the inputs, so importing node files in any order, or the same file twice, gives the same bytes:

- syscall (and any other table) entries: the union of keys; per entry, times first_* take the earliest,
  others the latest; counters the larger (a lower bound of the true total: the files share no ledger of
  which runs each count covers, and a sum would count a re-imported run twice); lists the sorted union;
  flags (complete, *_traced, ...) AND: one incomplete input leaves the result incomplete;
- run records: the union by a stable key (node, container, start, watch key); two copies of one run keep
  the final one over a checkpoint of it (in_progress), then the later; the newest MAX_RUN_RECORDS stay;
- convergence: the record with the latest new syscall (its count of quiet runs is the one that holds);
- revision and updated: the larger, so that the joined document is a function of its inputs alone.

Sections this module does not know (argument conditions, static analysis, histories) go through the same
generic rules, so a new profile section is carried over without a change here.
Standard library only; no I/O (syscage.travel reads and writes the files).
"""

from __future__ import annotations

import json
from typing import Any

from syscage.profile import MAX_INCOMPLETE_REASONS, MAX_RUN_RECORDS

ACCESS_ORDER = "rwacdlkxm"  # syscage.profile's order of AppArmor access kinds
_IDENTITY = ("kind", "schema", "name", "arch")


class JoinError(ValueError):
    """The two documents cannot be joined (different profiles or architectures)."""


def run_key(run: dict[str, Any]) -> tuple[str, str, str, str]:
    """What identifies one container's run wherever it is copied: the node that watched it, the container, when
    it started and its watch key."""
    return (str(run.get("node", "")), str(run.get("container_id", "")), str(run.get("started", "")),
            str(run.get("key", "")))


def with_node(profile: dict[str, Any], node: str) -> dict[str, Any]:
    """The profile with `node` named in every run record that names none (records from before runs kept it)."""
    if all("node" in r for r in profile["runs"]):
        return profile
    return {**profile, "runs": [r if "node" in r else {**r, "node": node} for r in profile["runs"]]}


def join(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    for field in _IDENTITY:
        if a.get(field) != b.get(field):
            raise JoinError(f"{field} differs: {a.get(field)!r} and {b.get(field)!r}")
    out: dict[str, Any] = {}
    for key in sorted(set(a) | set(b)):
        if key not in a or key not in b:
            out[key] = a[key] if key in a else b[key]
        elif key == "runs":
            out[key] = _join_runs(a[key], b[key])
        elif key == "convergence":
            out[key] = max(a[key], b[key], key=_convergence_rank)
        elif key == "incomplete_reasons":
            out[key] = sorted(set(a[key]) | set(b[key]))[-MAX_INCOMPLETE_REASONS:]
        else:
            out[key] = _join_value(key, a[key], b[key])
    # A field only one side has is kept as it is, except a flag: absent counts as "not known to be true".
    for key in ("files_traced", "network_traced", "capabilities_traced"):
        if key in out and (key not in a or key not in b):
            out[key] = False
    if out["incomplete_reasons"] or not out["complete"]:
        out["complete"] = False
    _arguments_stay_unconditional(out, a, b)
    return out


ANY_ARGUMENT = "allowed with any argument by a merged node's profile"


def _arguments_stay_unconditional(out: dict[str, Any], a: dict[str, Any], b: dict[str, Any]) -> None:
    """Argument conditions (syscage.arguments): a syscall one side allows with no entry allows any argument there,
    so it must stay unconditional in the union, not take the other side's values as its only ones."""
    table = out.get("arguments")
    if not isinstance(table, dict):
        return
    table = out["arguments"] = dict(table)  # it may be an input's own table
    for name, entry in list(table.items()):
        if not isinstance(entry, dict) or "unconditional" in entry:
            continue
        if any(name in side["syscalls"] and name not in (side.get("arguments") or {}) for side in (a, b)):
            table[name] = {**entry, "unconditional": ANY_ARGUMENT, "run": ""}


def _join_runs(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[dict[str, Any]]:
    chosen: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for run in [*a, *b]:
        k = run_key(run)
        if k not in chosen or _run_rank(run) > _run_rank(chosen[k]):
            chosen[k] = run
    ordered = sorted(chosen.values(), key=lambda r: (str(r.get("stopped", "")), run_key(r)))
    return ordered[-MAX_RUN_RECORDS:]


def _run_rank(run: dict[str, Any]) -> tuple[int, str, str]:
    """The copy of one run that wins: the final record over a checkpoint, then the later, then any fixed order."""
    return (0 if run.get("in_progress") else 1, str(run.get("stopped", "")), _canonical(run))


def _convergence_rank(record: Any) -> tuple[str, int, float, str]:
    if not isinstance(record, dict):
        return ("", -1, -1.0, _canonical(record))
    return (str(record.get("last_new", "")), int(record.get("runs_since_new", 0)),
            float(record.get("seconds_since_new", 0.0)), _canonical(record))


def _join_value(key: str, a: Any, b: Any) -> Any:
    if a == b:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: (_join_value(k, a[k], b[k]) if k in a and k in b else a.get(k, b.get(k)))
                for k in sorted(set(a) | set(b))}
    if isinstance(a, bool) and isinstance(b, bool):
        return a and b  # complete, *_traced: both must say so
    if isinstance(a, list) and isinstance(b, list):
        items = {_canonical(x): x for x in [*a, *b]}
        merged = [items[k] for k in sorted(items)]
        if key == "access" and all(isinstance(x, str) and x in ACCESS_ORDER for x in merged):
            merged.sort(key=ACCESS_ORDER.index)
        return merged
    if _number(a) and _number(b):
        return max(a, b)
    if isinstance(a, str) and isinstance(b, str):
        return min(a, b) if key.startswith("first") or key == "created" else max(a, b)
    return max(a, b, key=_canonical)  # different kinds: a fixed choice, whichever order they come in


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _canonical(x: Any) -> str:
    return json.dumps(x, sort_keys=True, separators=(",", ":"))
