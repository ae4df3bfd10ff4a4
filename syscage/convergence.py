"""Has learning converged? Per syscall, in how many runs it was seen; overall, how many runs (and how much
traced time) have passed since a run last brought anything new.

The rule (config `[convergence]`): a profile has converged when at least `min_runs` complete runs, with at
least `min_minutes` of traced time between them, have passed since the last run that observed a syscall
the profile had not seen before. A syscall seen in fewer than `chance_share` of the profile's runs is
*chance-dependent*: it was needed only by some runs, so the workloads learned so far may well miss others
like it. Standard library only: enforce reads the state on a container's start path.
"""

from __future__ import annotations

from typing import Any, NamedTuple

# Allowed whatever the runs saw: never chance-dependent, and never "new".
ALWAYS_THERE = frozenset({"floor", "kernel", "runtime-base"})


class Rule(NamedTuple):
    min_runs: int = 5
    min_minutes: float = 0.0
    chance_share: float = 0.5

    def describe(self) -> str:
        time = f" and {self.min_minutes:g} min of traced time" if self.min_minutes else ""
        return f"{self.min_runs} complete runs{time} with nothing new"


class State(NamedTuple):
    converged: bool
    runs_since_new: int
    seconds_since_new: float
    last_new: str
    runs: int  # runs merged into the profile (the share's denominator)
    chance: list[tuple[str, int]]  # (syscall, runs it was seen in), seen in fewer than chance_share of runs
    rule: Rule

    def summary(self) -> str:
        since = f"{self.runs_since_new} run(s), {self.seconds_since_new / 60:.1f} min traced since anything new"
        return f"{'converged' if self.converged else 'NOT converged'} ({since}; rule: {self.rule.describe()})"


def rule_of(config: Any) -> Rule:
    return Rule(config.convergence_min_runs, config.convergence_min_minutes, config.chance_share)


def seen_runs(entry: dict[str, Any]) -> int:
    """Runs that observed this syscall. A profile from before the count existed: every run that touched the
    entry, if it was ever observed."""
    if isinstance(entry.get("seen_runs"), int):
        return int(entry["seen_runs"])
    return int(entry["runs"]) if "observed" in entry["sources"] else 0


def seconds_between(started: str, stopped: str) -> float:
    from datetime import datetime

    try:
        return max(0.0, (datetime.fromisoformat(stopped) - datetime.fromisoformat(started)).total_seconds())
    except (TypeError, ValueError):
        return 0.0


def record(profile: dict[str, Any]) -> dict[str, Any]:
    """The profile's convergence record; for a profile from before it existed, worked out from what it keeps:
    the last first sighting of an observed syscall, and the kept complete runs that stopped after it."""
    kept = profile.get("convergence")
    if isinstance(kept, dict):
        return kept
    firsts = [e["first_seen"] for e in profile["syscalls"].values() if "observed" in e["sources"]]
    last_new = max(firsts, default="")
    after = [r for r in profile["runs"] if r.get("complete") and str(r.get("stopped", "")) > last_new]
    return {"last_new": last_new, "runs_since_new": len(after),
            "seconds_since_new": round(sum(seconds_between(str(r.get("started", "")), r["stopped"]) for r in after),
                                       3)}


def advance(before: dict[str, Any], new: list[str], complete: bool, started: str, stopped: str) -> dict[str, Any]:
    """The record after one more run: `new` the syscalls it observed that no run had before. A run that brought
    something new starts the count again; an incomplete run with nothing new does not count (it may have
    missed something)."""
    current = record(before)
    if new:
        return {"last_new": stopped, "runs_since_new": 0, "seconds_since_new": 0.0, "new_in_last": sorted(new)}
    if not complete:
        return dict(current)
    return {**current, "runs_since_new": int(current["runs_since_new"]) + 1,
            "seconds_since_new": round(float(current["seconds_since_new"]) + seconds_between(started, stopped), 3)}


def state(profile: dict[str, Any], rule: Rule) -> State:
    rec = record(profile)
    runs = int(profile.get("runs_total", len(profile["runs"])))
    chance = []
    if runs > 1:
        for name, entry in sorted(profile["syscalls"].items()):
            seen = seen_runs(entry)
            if seen and not ALWAYS_THERE & set(entry["sources"]) and seen < rule.chance_share * runs:
                chance.append((name, seen))
    since, seconds = int(rec["runs_since_new"]), float(rec["seconds_since_new"])
    converged = runs > 0 and since >= rule.min_runs and seconds >= rule.min_minutes * 60
    return State(converged, since, seconds, str(rec.get("last_new", "")), runs, chance, rule)


def check_record(doc: dict[str, Any]) -> str | None:
    """What is wrong with a stored record (None: fine, or absent, as in older profiles)."""
    rec = doc.get("convergence")
    if rec is None:
        return None
    if not (isinstance(rec, dict) and isinstance(rec.get("last_new"), str)
            and isinstance(rec.get("runs_since_new"), int) and not isinstance(rec.get("runs_since_new"), bool)
            and isinstance(rec.get("seconds_since_new"), (int, float))):
        return "'convergence' is malformed"
    return None
