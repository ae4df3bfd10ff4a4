"""Curating the store: when (durations and dates as operators type them) and what changed since a time.

Removing and pruning themselves are the store's (ProfileStore.remove, ProfileStore.prune): it is the only
writer of the store root.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from syscage.errors import SyscageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(\d+)([smhdw])$")


def parse_duration(text: str) -> timedelta:
    """"30d", "12h", "2w", "90m", "45s"."""
    match = _DURATION.match(text.strip())
    if not match:
        raise SyscageError(f"{text!r} is not a duration", "use a number and a unit: 30d, 12h, 2w, 90m or 45s")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def utc_now_dt() -> datetime:
    return datetime.now(UTC)


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """A point in time: an ISO date or time (UTC unless it says otherwise), or a duration ago ("7d")."""
    now = now or datetime.now(UTC)
    if _DURATION.match(text.strip()):
        return now - parse_duration(text)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise SyscageError(f"{text!r} is not a date",
                           "use 2026-11-01, 2026-11-01T12:00:00Z or a duration ago: 7d") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def iso(when: datetime) -> str:
    """The store's own format (syscage.store.utc_now): UTC, milliseconds, Z."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _after(stamp: object, since: datetime) -> bool:
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        return False
    return (when if when.tzinfo else when.replace(tzinfo=UTC)) >= since


def changes_since(profile: dict[str, Any], since: datetime) -> dict[str, Any]:
    """What changed in the profile since `since`: syscalls first seen, runs recorded, prunes and accepts.
    Runs whose record is no longer kept (the newest 100 are) are counted by the syscalls, not listed."""
    added = {n: e for n, e in sorted(profile["syscalls"].items()) if _after(e["first_seen"], since)}
    return {
        "profile": profile["name"],
        "since": iso(since),
        "added": [{"syscall": n, "first_seen": e["first_seen"], "sources": e["sources"]} for n, e in added.items()],
        "runs": [r for r in profile["runs"] if _after(r.get("stopped"), since)],
        "pruned": [p for p in profile.get("pruned", []) if _after(p.get("at"), since)],
        "accepted": [a for a in profile.get("accepted", []) if _after(a.get("at"), since)],
    }


def format_changes(changes: dict[str, Any]) -> str:
    lines = [f"profile {changes['profile']}: changes since {changes['since']}"]
    lines.append(f"syscalls added ({len(changes['added'])}):")
    lines.extend(f"  {a['syscall']:24} first seen {a['first_seen']} ({','.join(a['sources'])})"
                 for a in changes["added"])
    lines.append(f"runs recorded ({len(changes['runs'])}):")
    for run in changes["runs"]:
        state = "ok" if run.get("complete") else "INCOMPLETE: " + "; ".join(run.get("problems", []))
        withheld = f"; withheld {', '.join(run['withheld'])}" if run.get("withheld") else ""
        lines.append(f"  {run.get('stopped')} {run.get('container_id')} {state}{withheld}")
    for p in changes["pruned"]:
        lines.append(f"pruned at {p['at']}: {', '.join(p['syscalls'])} (last seen before {p['last_seen_before']})")
    for a in changes["accepted"]:
        lines.append(f"accepted at {a['at']} ({len(a.get('reasons', []))} reason(s) set aside)")
    return "\n".join(lines)
