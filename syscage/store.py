"""The profile store: the only code that writes under the store root.

Layout: <root>/profiles/<name>/{profile.json, seccomp.json, .lock, pending/<id>.json}. Every write holds
the profile's lock and goes temp file -> fsync -> rename -> fsync(dir), so a crash leaves either the old
or the new file, never half of one, and concurrent learners of one profile are serialised and lose nothing.

A pending run (pending/<id>.json) is the durable trace of a container the tracer watches: written when
the watch starts, removed in the locked transaction that merges the run (whose record names it, so a
crash between the two never counts a run twice). A pending run whose tracer is no longer the live one,
or whose recording failed (<id>.failed.json), is a lost run: the profile is incomplete until it is
settled (a tracer's start turns it into an incomplete run) or accepted.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syscage.atomic import write_atomically
from syscage.config import DEFAULT_ALWAYS_ALLOW
from syscage.errors import SyscageError
from syscage.locks import open_locked
from syscage.names import validate_profile_name
from syscage.profile_schema import check_profile

if TYPE_CHECKING:
    from syscage.config import Config
    from syscage.profile import Observation

# Merging, rendering and libseccomp are imported where a profile is written: reading one (enforce, on
# the container's start path) needs none of them.
__all__ = ["ProfileStore", "dump_json", "utc_now", "write_atomically"]

PROFILE_FILE = "profile.json"
SECCOMP_FILE = "seccomp.json"
LOCK_FILE = ".lock"
PENDING_DIR = "pending"
FAILED = ".failed"  # <id>.failed.json: recording this run failed
NOTES_DIR = "unrecorded"  # under the run directory: <profile>/<id>.json, runs the store had no room for
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def utc_now() -> str:
    from datetime import UTC, datetime  # here: enforce reads profiles on the start path and needs no clock

    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dump_json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


class ProfileStore:
    def __init__(self, root: Path, errno: int, always_allow: tuple[str, ...] = DEFAULT_ALWAYS_ALLOW,
                 notes: Path | None = None, never_allow: tuple[str, ...] = (), coverage: str = "learned",
                 node: str = "") -> None:
        self.root = root
        self.node = node  # node.name: kept in every run this store records (syscage import keeps runs apart by it)
        self.coverage = coverage  # seccomp.coverage: what seccomp.json allows beyond the learned syscalls
        self.never_allow = frozenset(never_allow)  # seccomp.never_allow: kept out of every profile
        # Where a run that could not be written to the store (a full disk) is noted instead: another file
        # system (the run directory, a tmpfs). Such a note is a lost pending run until settled.
        self.notes = notes
        self.profiles = root / "profiles"
        self.errno = errno
        self.always_allow = always_allow  # seccomp.always_allow: merged into every recorded run

    @classmethod
    def from_config(cls, config: Config) -> ProfileStore:
        """The store the config names, with its errno, floor, never-allow list and notes directory."""
        return cls(config.store, config.seccomp_errno, config.always_allow, config.run_dir / NOTES_DIR,
                   config.never_allow, config.coverage, config.node)

    def profile_dir(self, name: str) -> Path:
        validate_profile_name(name)
        path = self.profiles / name
        # Names cannot contain '/', but be explicit: nothing is ever written outside the store.
        if path.parent != self.profiles:
            raise SyscageError(f"profile {name!r} resolves outside the store", "use a plain name")
        return path

    def names(self) -> list[str]:
        """Profiles with a profile.json or a pending run (a first learning run, not recorded yet)."""
        try:
            return sorted(p.name for p in self.profiles.iterdir()  # .removed-*: an interrupted `syscage rm`
                          if not p.name.startswith(".") and ((p / PROFILE_FILE).is_file()
                                                             or _has_entries(p / PENDING_DIR)))
        except FileNotFoundError:
            return []

    def read(self, name: str) -> dict[str, Any] | None:
        """The profile, validated; None if it does not exist; raises if it is corrupt."""
        path = self.profile_dir(name) / PROFILE_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SyscageError(f"cannot read profile {name}: {exc}", f"check {path}") from None
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise SyscageError(f"profile {name} is corrupt: {path} is not valid JSON ({exc})",
                               "restore it, or remove the profile and learn again") from None
        return check_profile(doc, name)

    def read_seccomp(self, name: str) -> dict[str, Any] | None:
        """The stored seccomp.json (compiled with libseccomp when it was written), or None if unreadable."""
        try:
            doc = json.loads((self.profile_dir(name) / SECCOMP_FILE).read_bytes())
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) else None

    def record_run(self, name: str, obs: Observation, pending: str | None = None,
                   settling: bool = False, key: str = "") -> dict[str, Any] | None:
        """Merge one run into the profile and re-render its seccomp.json; returns the new profile.

        pending: the id of the run's pending record, removed in the same locked transaction. settling: the
        run only stands in for that pending record (a lost one): nothing is written if the record is gone
        or its run is already in the profile (then None). key: the watch key (syscage.protocol.watch_key)
        kept in the run record, so that a late record of the same container is known (run_recorded)."""
        from syscage.checkpoint import checkpoint_key, split_checkpoint_entries
        from syscage.profile import merge

        def change(current: dict[str, Any], now: str) -> dict[str, Any] | None:
            if settling and pending and (not self._pending_path(name, pending)
                                         or any(r.get("pending") == pending for r in current["runs"])):
                return None
            current, kept = _replacing_checkpoint(current, obs, checkpoint_key(pending, key, obs.container_id))
            kept, withheld = self._withhold(kept)
            base, held = split_checkpoint_entries(current)  # other containers' checkpoints, kept as they are
            out = merge(base, kept, now, self.always_allow)
            out["syscalls"].update({n: e for n, e in held.items() if n not in out["syscalls"]})
            tags = {**({"pending": pending} if pending else {}), **({"key": key} if key else {}),
                    **({"node": self.node} if self.node else {})}
            if withheld:
                tags["withheld"] = withheld
            if self.never_allow & set(out["syscalls"]):  # learned before the config named them
                out["syscalls"] = {k: v for k, v in out["syscalls"].items() if k not in self.never_allow}
            if tags:
                out["runs"][-1] = {**out["runs"][-1], **tags}
            return out

        with self.locked(name):
            updated = self._change(name, change, create=True)
            if pending:
                self._remove_pending(name, pending)
            return updated

    def checkpoint_run(self, name: str, obs: Observation, pending: str | None, key: str) -> dict[str, Any] | None:
        """What a container still learning did so far, in its profile as a run in progress (syscage.checkpoint)."""
        from syscage.checkpoint import add_checkpoint, checkpoint_key

        kept, _ = self._withhold(obs)
        run = {"container_id": obs.container_id, "started": obs.started, "stopped": obs.stopped,
               "cutover": obs.cutover, "syscall_count": len(kept.syscalls), "complete": False,
               "problems": [f"in progress: checkpoint at {obs.stopped}; its final record replaces it"],
               **({"key": key} if key else {}), **({"node": self.node} if self.node else {})}
        ckey = checkpoint_key(pending, key, obs.container_id)

        def change(current: dict[str, Any], now: str) -> dict[str, Any] | None:
            # Recorded meanwhile (its record came between reading the slot and this write): nothing to add.
            if pending and self._pending_path(name, pending) is None:
                return None
            if key and any(r.get("container_id") == obs.container_id and r.get("key") == key
                           and not r.get("in_progress") for r in current["runs"]):
                return None
            return add_checkpoint(current, run, kept.syscalls, ckey, now)

        with self.locked(name):
            return self._change(name, change, create=True)

    def _withhold(self, obs: Observation) -> tuple[Observation, list[str]]:
        """The run without the syscalls seccomp.never_allow names, and those it needed. The run stays complete:
        the operator chose to deny them, and the run record says they were needed and withheld."""
        withheld = sorted(self.never_allow & (set(obs.syscalls) | set(obs.runtime_base)))
        if not withheld:
            return obs, []
        from dataclasses import replace

        return replace(obs, syscalls=[s for s in obs.syscalls if s not in self.never_allow],
                       runtime_base=[s for s in obs.runtime_base if s not in self.never_allow],
                       pre_exec=[s for s in obs.pre_exec if s not in self.never_allow]), withheld

    def accept(self, name: str, live_instance: str | None = None) -> dict[str, Any]:
        """The operator vouches for the profile: incomplete runs, and lost pending runs (dropped), alike."""
        from syscage.profile import accept

        with self.locked(name):
            lost = self.lost_pending(name, live_instance)

            def change(current: dict[str, Any], now: str) -> dict[str, Any]:
                out = accept(current, now)
                if lost:
                    out.setdefault("accepted", []).append(
                        {"at": now, "reasons": [f"lost run of {p.get('container_id', '?')}: {describe_lost(p)}"
                                                for p in lost]})
                return out

            updated = self._change(name, change, create=False)
            for p in lost:
                self._remove_pending(name, str(p["id"]))
            if updated is None:  # _change(create=False) returns None only for a profile that is not there
                raise SyscageError(f"profile {name} does not exist", "see `syscage list`")
            return updated

    def set_static(self, name: str, static: dict[str, Any]) -> dict[str, Any]:
        """Record the profile's static set (syscage.static_syscalls), replacing an earlier one."""
        with self.locked(name):
            def change(current: dict[str, Any], now: str) -> dict[str, Any]:
                return {**current, "static": {**static, "analysed": now}, "updated": now,
                        "revision": int(current.get("revision", 0)) + 1}

            updated = self._change(name, change, create=False)
            assert updated is not None
            return updated

    def merge_static(self, name: str, static: dict[str, Any], container_id: str) -> dict[str, Any]:
        """Add one run's static set (hooks.daemon.static_record) to the profile's: the union of what every
        analysed run's programs can make, with what could not be analysed counted."""
        from syscage.static_merge import merge_static

        with self.locked(name):
            def change(current: dict[str, Any], now: str) -> dict[str, Any]:
                return {**current, "static": merge_static(current.get("static"), static, container_id, now),
                        "updated": now, "revision": int(current.get("revision", 0)) + 1}

            updated = self._change(name, change, create=False)
            assert updated is not None
            return updated

    def _change(self, name: str, change: Callable[[dict[str, Any], str], dict[str, Any] | None],
                create: bool) -> dict[str, Any] | None:
        """Apply `change` to the profile and write it; the caller holds the lock."""
        current = self.read(name)
        now = utc_now()
        if current is None:
            from syscage.profile import new_profile
            from syscage.syscalls import native_arch

            if not create:
                raise SyscageError(f"no profile named {name}", "list profiles with `syscage list`")
            current = new_profile(name, native_arch(), now)
        updated = change(current, now)
        if updated is not None:
            self._write(name, updated)
        return updated

    def write_merged(self, name: str, profile: dict[str, Any]) -> None:
        """Write a profile merged from other nodes' files (syscage.travel); the caller holds the lock. What
        seccomp.never_allow names is kept out, as in a recorded run."""
        if self.never_allow & set(profile["syscalls"]):
            profile = {**profile, "syscalls": {k: v for k, v in profile["syscalls"].items()
                                               if k not in self.never_allow}}
        self._write(name, check_profile(profile, name))

    # -- pending runs ---------------------------------------------------------------------------

    def add_pending(self, name: str, doc: dict[str, Any]) -> None:
        """Durably note that a container learning into `name` is watched (doc["id"] names the record)."""
        pending_id = _check_id(doc["id"])
        with self.locked(name):
            directory = self.profile_dir(name) / PENDING_DIR
            _make_dir(directory)
            write_atomically(directory / f"{pending_id}.json", dump_json(doc), 0o600)

    def drop_pending(self, name: str, pending_id: str) -> None:
        """Forget a pending run without recording one (its container was never created)."""
        with self.locked(name):
            self._remove_pending(name, _check_id(pending_id))

    def fail_pending(self, name: str, pending_id: str) -> None:
        """Recording this run failed: its pending record now counts as lost, whatever tracer is live. A
        rename, which needs no free space (the usual reason recording failed)."""
        directory = self.profile_dir(name) / PENDING_DIR
        pending_id = _check_id(pending_id)
        with self.locked(name):
            os.replace(directory / f"{pending_id}.json", directory / f"{pending_id}{FAILED}.json")
            _fsync_dir(directory)

    def pending(self, name: str) -> list[dict[str, Any]]:
        """Every pending run of the profile: its record, plus "id" and "failed" (an unreadable one has
        "corrupt")."""
        found = []
        for directory in self._pending_dirs(name):
            found.extend(_pending_in(directory, noted=directory.parent != self.profile_dir(name)))
        return found

    def note_unrecorded(self, name: str, doc: dict[str, Any]) -> str | None:
        """The store cannot take this run (a full disk): note it on the run directory's file system, where
        it counts as a lost pending run of `name` until a later write settles it. The note's id, or None if
        there is nowhere to note it."""
        if self.notes is None:
            return None
        note_id = f"note-{os.urandom(6).hex()}"
        try:
            directory = self.notes / validate_profile_name(name)
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_atomically(directory / f"{note_id}.json", dump_json({**doc, "id": note_id}), 0o600, durable=False)
        except OSError:
            return None
        return note_id

    def _pending_dirs(self, name: str) -> list[Path]:
        dirs = [self.profile_dir(name) / PENDING_DIR]
        if self.notes is not None:
            dirs.append(self.notes / name)
        return dirs

    def lost_pending(self, name: str, live_instance: str | None) -> list[dict[str, Any]]:
        """Pending runs that will never be recorded as they are: their tracer is not the live one
        (`live_instance`, see syscage.liveness), or recording them failed. Any makes the profile
        incomplete. The others are containers learning now."""
        return [p for p in self.pending(name) if lost_now(p, live_instance)]

    def lost_run_of(self, name: str, container_id: str, key: str, live_instance: str | None) -> dict[str, Any] | None:
        """The lost pending run of this very container (same id and watch key), if there is one: a record that
        comes without its watch settles it."""
        if not key:
            return None
        return next((p for p in self.lost_pending(name, live_instance)
                     if p.get("container_id") == container_id and p.get("key") == key), None)

    def run_recorded(self, name: str, container_id: str, key: str) -> bool:
        """Is a run of this very container (same id and watch key) among the profile's run records?"""
        if not key:
            return False
        try:
            profile = self.read(name)
        except SyscageError:
            return False
        return any(r.get("container_id") == container_id and r.get("key") == key and not r.get("in_progress")
                   for r in (profile or {}).get("runs", []))

    def _pending_path(self, name: str, pending_id: str) -> Path | None:
        for directory in self._pending_dirs(name):
            for candidate in (f"{pending_id}.json", f"{pending_id}{FAILED}.json"):
                if (directory / candidate).exists():
                    return directory / candidate
        return None

    def _remove_pending(self, name: str, pending_id: str) -> None:
        path = self._pending_path(name, _check_id(pending_id))
        if path is None:
            return
        path.unlink()
        _fsync_dir(path.parent)

    def _write(self, name: str, profile: dict[str, Any]) -> None:
        directory = self.profile_dir(name)
        from syscage.arguments import conditions
        from syscage.seccomp import allowed_syscalls, render, render_profile

        # Most runs add no syscall: then seccomp.json (compiled when it was written) stays as it is.
        # Otherwise render and compile before writing anything: a profile that cannot become a filter
        # is refused whole rather than stored beside a stale seccomp.json.
        allowed = allowed_syscalls(profile, self.always_allow, self.coverage, self.never_allow)
        unchanged = self.read_seccomp(name) == render(allowed, self.errno, profile["arch"],
                                                      conditions(profile, frozenset(self.always_allow),
                                                                 self.never_allow))
        seccomp = None if unchanged else render_profile(profile, self.errno, self.always_allow, self.coverage,
                                                        self.never_allow)
        write_atomically(directory / PROFILE_FILE, dump_json(profile))
        if seccomp is not None:
            write_atomically(directory / SECCOMP_FILE, dump_json(seccomp))

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        directory = self.profile_dir(name)
        while True:
            _make_dir(self.profiles)
            _make_dir(directory)
            fd = open_locked(directory / LOCK_FILE)
            if fd is None:  # a blocking lock waits instead: said for the type checker
                continue
            # `syscage rm` renames the directory away under this lock: a waiter then holds the lock of a
            # removed profile, and takes the lock of the new directory instead.
            try:
                current = os.stat(directory / LOCK_FILE, follow_symlinks=False)
                if (current.st_dev, current.st_ino) == (os.fstat(fd).st_dev, os.fstat(fd).st_ino):
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        try:
            yield
        finally:
            os.close(fd)

    def add_denied(self, name: str, syscalls: dict[str, str], containers: list[str]) -> list[str]:
        """Merge syscalls the kernel denied (or logged, in complain) into the profile, with source "denials"
        (syscalls: name -> time of its newest record). Returns what was new; seccomp.never_allow is kept out
        (the caller says so). Recorded in the profile's `from_denials` history."""
        added: list[str] = []

        def change(current: dict[str, Any], now: str) -> dict[str, Any] | None:
            wanted = {n: t for n, t in syscalls.items() if n not in self.never_allow}
            table = dict(current["syscalls"])
            for syscall, when in sorted(wanted.items()):
                entry = table.get(syscall)
                if entry is None:
                    added.append(syscall)
                    table[syscall] = {"first_seen": when, "last_seen": when, "runs": 0, "sources": ["denials"]}
                elif "denials" not in entry["sources"]:
                    table[syscall] = {**entry, "sources": sorted([*entry["sources"], "denials"]),
                                      "last_seen": max(entry["last_seen"], when)}
            if table == current["syscalls"]:
                return None
            history = {"at": now, "syscalls": added, "containers": sorted(set(containers))}
            return _revised(current, now, syscalls=table,
                            from_denials=[*current.get("from_denials", []), history][-100:])

        self._edit(name, change)
        return added

    def _edit(self, name: str, change: Any) -> None:
        """Change an existing profile under its lock (self._change), or say there is none."""
        if self.read(name) is None:  # before locking, which would make its directory
            raise SyscageError(f"no profile named {name}", "list profiles with `syscage list`")
        with self.locked(name):
            self._change(name, change, create=False)

    # -- removing and pruning (syscage rm, syscage prune) ------------------------------------------

    def remove(self, name: str, live_instance: str | None = None) -> None:
        """Remove the profile: its directory is renamed out of `profiles/` (atomic: it is there or gone) under
        its lock, then deleted. Refused while a container learns into it."""
        import shutil

        directory = self.profile_dir(name)
        if not directory.is_dir() and not (self.notes and (self.notes / name).is_dir()):
            raise SyscageError(f"no profile named {name}", "list profiles with `syscage list`")
        with self.locked(name):
            learning = [p for p in self.pending(name) if not lost_now(p, live_instance)]
            if learning:
                raise SyscageError(f"profile {name} has {len(learning)} container(s) learning into it now "
                                   f"({', '.join(str(p.get('container_id', '?')) for p in learning)})",
                                   "stop them first, then remove it")
            gone = self.profiles / f".removed-{name}-{os.urandom(4).hex()}"
            os.rename(directory, gone)
            _fsync_dir(self.profiles)
            if self.notes is not None:
                shutil.rmtree(self.notes / name, ignore_errors=True)
        shutil.rmtree(gone, ignore_errors=True)

    def prune(self, name: str, cutoff: str, dry_run: bool = False) -> list[str]:
        """Drop the syscalls last seen before `cutoff` (an ISO time), except the floor (seccomp.always_allow)
        and runtime-base entries; returns them. Recorded in the profile's `pruned` history."""
        from datetime import datetime

        limit = datetime.fromisoformat(cutoff)
        dropped: list[str] = []

        def stale(entry: dict[str, Any]) -> bool:
            try:
                seen = datetime.fromisoformat(entry["last_seen"])
                return (seen if seen.tzinfo else seen.replace(tzinfo=limit.tzinfo)) < limit
            except (ValueError, TypeError):
                return False  # a time we cannot read: never guess it is old

        def change(current: dict[str, Any], now: str) -> dict[str, Any] | None:
            dropped.extend(sorted(n for n, e in current["syscalls"].items()
                                  if stale(e) and n not in self.always_allow
                                  and not {"floor", "runtime-base", "kernel"} & set(e["sources"])))
            if dry_run or not dropped:
                return None
            return _revised(current, now, syscalls={n: e for n, e in current["syscalls"].items() if n not in dropped},
                            pruned=[*current.get("pruned", []),
                                    {"at": now, "last_seen_before": cutoff, "syscalls": dropped}])

        self._edit(name, change)
        return dropped


def _replacing_checkpoint(current: dict[str, Any], obs: Observation, ckey: str) -> tuple[dict[str, Any], Observation]:
    """The profile without this run's checkpoint, and the run to merge. A complete run's report holds all the
    checkpoint saw; an incomplete one keeps it, and an untraced one (its tracer died) says what is missing."""
    from syscage.checkpoint import take_checkpoint

    current, held, taken_at = take_checkpoint(current, ckey)
    if taken_at is None or obs.complete:
        return current, obs
    from dataclasses import replace

    problems = list(obs.problems)
    if obs.cutover == "none":
        problems.append(f"what its last checkpoint ({taken_at}) saw is kept: at most tracer.checkpoint_interval of "
                        "the run after it is missing")
    return current, replace(obs, syscalls=sorted(set(obs.syscalls) | set(held)), problems=problems)


def _revised(current: dict[str, Any], now: str, **fields: Any) -> dict[str, Any]:
    """A copy of the profile with `fields` replaced, stamped as the next revision."""
    return {**current, **fields, "updated": now, "revision": int(current.get("revision", 0)) + 1}


def _pending_in(directory: Path, noted: bool) -> list[dict[str, Any]]:
    """The pending records in one directory; a note (noted) is a failed one."""
    try:
        entries = sorted(e for e in os.listdir(directory) if e.endswith(".json") and not e.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        return []
    found = []
    for entry in entries:
        stem = entry[:-len(".json")]
        failed = noted or stem.endswith(FAILED)
        doc: dict[str, Any] = {}
        try:
            loaded = json.loads((directory / entry).read_bytes())
            doc = loaded if isinstance(loaded, dict) else {"corrupt": True}
        except FileNotFoundError:
            continue  # settled meanwhile
        except (OSError, ValueError):
            doc = {"corrupt": True}
        found.append({**doc, "id": stem[:-len(FAILED)] if stem.endswith(FAILED) else stem, "failed": failed,
                      **({"noted": True} if noted else {})})
    return found


def describe_lost(pending: dict[str, Any]) -> str:
    if pending.get("corrupt"):
        return "its pending record is unreadable"
    if pending.get("noted"):
        return f"the store could not take its run ({pending.get('error', 'see the syscage log')})"
    if pending.get("failed"):
        return "recording its run failed (see the syscage log)"
    return f"the tracer that watched it (instance {pending.get('instance', '?')}) stopped or crashed"


def lost_now(pending: dict[str, Any], live_instance: str | None) -> bool:
    """Is this pending run (from pending()) lost, with `live_instance` the running tracer's?"""
    return bool(pending["failed"] or pending.get("corrupt") or not live_instance
                or pending.get("instance") != live_instance)


def _check_id(pending_id: object) -> str:
    if not isinstance(pending_id, str) or not pending_id or not set(pending_id) <= _ID_CHARS:
        raise SyscageError(f"invalid pending run id {str(pending_id)[:40]!r}", "report this")
    return pending_id


def _has_entries(directory: Path) -> bool:
    try:
        return any(e.endswith(".json") and not e.startswith(".") for e in os.listdir(directory))
    except OSError:
        return False


def _make_dir(directory: Path) -> None:
    """mkdir, durably: a new directory's entry is fsynced into its parent (a crash must not lose it)."""
    if directory.is_dir():
        return
    if not directory.parent.is_dir():
        _make_dir(directory.parent)
    try:
        directory.mkdir(mode=0o755)
    except FileExistsError:
        return
    _fsync_dir(directory.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
