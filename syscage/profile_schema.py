"""What a stored profile must look like: the schema constants and the check every read goes through.

Kept apart from the merge logic (syscage.profile) so that reading a profile, as enforce does on the
container's start path, imports nothing else.
"""

from __future__ import annotations

from typing import Any

from syscage.errors import SyscageError

SCHEMA_VERSION = 1
KIND = "syscage-profile"
# The fields of a run record that readers use (`syscage show` prints them all).
RUN_FIELDS = (("container_id", str), ("stopped", str), ("cutover", str), ("syscall_count", int),
              ("complete", bool), ("problems", list))


def check_profile(doc: object, name: str) -> dict[str, Any]:
    """Validate a profile read from disk; a corrupt or foreign document raises, naming the profile."""
    def bad(why: str) -> SyscageError:
        return SyscageError(f"profile {name} is corrupt: {why}",
                            f"inspect {name}/profile.json, restore it or remove the profile and learn again")

    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        raise bad("not a syscage profile")
    schema = doc.get("schema")
    if not isinstance(schema, int) or isinstance(schema, bool):
        raise bad("no schema version")
    if schema > SCHEMA_VERSION:
        raise SyscageError(f"profile {name} has schema {schema}, newer than this syscage ({SCHEMA_VERSION})",
                           "upgrade syscage")
    if doc.get("name") != name:
        raise bad(f"it names itself {doc.get('name')!r}")
    for key, kind in (("syscalls", dict), ("unresolved_syscalls", dict), ("runs", list),
                      ("incomplete_reasons", list), ("complete", bool), ("arch", str)):
        if not isinstance(doc.get(key), kind):
            raise bad(f"'{key}' is missing or not a {kind.__name__}")
    for table in ("syscalls", "unresolved_syscalls"):
        for syscall, entry in doc[table].items():
            if not (isinstance(entry, dict) and isinstance(entry.get("runs"), int)
                    and isinstance(entry.get("first_seen"), str) and isinstance(entry.get("last_seen"), str)
                    and isinstance(entry.get("sources"), list)
                    and all(isinstance(x, str) for x in entry["sources"])):
                raise bad(f"entry for syscall {syscall!r} is malformed")
            seen = entry.get("seen_runs", 0)
            if not isinstance(seen, int) or isinstance(seen, bool):
                raise bad(f"entry for syscall {syscall!r} has a malformed 'seen_runs'")
    from syscage.convergence import check_record

    static = doc.get("static")
    if static is not None and not (isinstance(static, dict) and isinstance(static.get("syscalls"), dict)
                                   and isinstance(static.get("binaries", {}), dict)
                                   and all(isinstance(w, list) and all(isinstance(x, str) for x in w)
                                           for w in static["syscalls"].values())):
        raise bad("'static' is malformed")
    if static is not None and not _static_counts_ok(static):
        raise bad("'static' has malformed analysis counts (unresolved, absent, programs, runs_analysed, ...)")
    wrong = _check_arguments(doc.get("arguments"))
    if wrong:
        raise bad(wrong)
    wrong = check_record(doc)
    if wrong:
        raise bad(wrong)
    if not all(isinstance(r, str) for r in doc["incomplete_reasons"]):
        raise bad("'incomplete_reasons' holds something other than text")
    if not all(isinstance(r, dict) for r in doc["runs"]):
        raise bad("'runs' holds something other than run records")
    for index, run in enumerate(doc["runs"]):
        for key, kind in RUN_FIELDS:
            value = run.get(key)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise bad(f"run record {index} has no valid '{key}'")
        if not all(isinstance(p, str) for p in run["problems"]):
            raise bad(f"run record {index} has a problem that is not text")
    if not isinstance(doc.get("updated"), str):
        raise bad("'updated' is missing or not a str")
    for counter in ("revision", "runs_total"):
        if not isinstance(doc.get(counter, 0), int) or isinstance(doc.get(counter, 0), bool):
            raise bad(f"'{counter}' is not a number")
    return doc


def _static_counts_ok(static: dict[str, Any]) -> bool:
    """The automatic analysis's fields (hooks.daemon.static_record), when present."""
    def count(key: str) -> bool:
        value = static.get(key, 0)
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    def texts(key: str) -> bool:
        value = static.get(key, [])
        return isinstance(value, list) and all(isinstance(x, str) for x in value)

    unresolved = static.get("unresolved", {})
    return (all(count(k) for k in ("runs_analysed", "unresolved_total", "paths_lost"))
            and all(texts(k) for k in ("absent", "programs"))
            and isinstance(unresolved, dict) and all(isinstance(v, str) for v in unresolved.values()))


def _check_arguments(section: object) -> str | None:
    """The learned arguments (syscage.arguments): absent in older profiles (then every syscall is allowed with
    any argument); per syscall either `unconditional` (why) or `values` (decimal value -> its first run)."""
    if section is None:
        return None
    if not isinstance(section, dict):
        return "'arguments' is not a table"
    for name, entry in section.items():
        if not isinstance(entry, dict):
            return f"'arguments' entry for {name!r} is malformed"
        if "unconditional" in entry:
            if not isinstance(entry["unconditional"], str):
                return f"'arguments' entry for {name!r} has a malformed 'unconditional'"
            continue
        values = entry.get("values")
        if not (isinstance(values, dict) and all(
                isinstance(v, str) and v.isdigit() and isinstance(w, dict) and isinstance(w.get("first_run"), str)
                for v, w in values.items())):
            return f"'arguments' entry for {name!r} has malformed 'values'"
    return None
