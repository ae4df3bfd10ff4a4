"""The profile store: the only code that writes under the store root.

Layout: <root>/profiles/<name>/{profile.json, seccomp.json, .lock}. Every write holds the profile's
lock and goes temp file -> fsync -> rename -> fsync(dir), so a crash leaves either the old or the
new file, never half of one, and concurrent learners of one profile are serialised and lose nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syscage.atomic import write_atomically
from syscage.errors import SyscageError
from syscage.names import validate_profile_name
from syscage.profile_schema import check_profile

if TYPE_CHECKING:
    from syscage.profile import Observation

# Merging, rendering and libseccomp are imported where a profile is written: reading one (enforce, on
# the container's start path) needs none of them.
__all__ = ["ProfileStore", "dump_json", "utc_now", "write_atomically"]

PROFILE_FILE = "profile.json"
SECCOMP_FILE = "seccomp.json"
LOCK_FILE = ".lock"


def utc_now() -> str:
    from datetime import UTC, datetime  # here: enforce reads profiles on the start path and needs no clock

    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dump_json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


class ProfileStore:
    def __init__(self, root: Path, errno: int) -> None:
        self.root = root
        self.profiles = root / "profiles"
        self.errno = errno

    def profile_dir(self, name: str) -> Path:
        validate_profile_name(name)
        path = self.profiles / name
        # Names cannot contain '/', but be explicit: nothing is ever written outside the store.
        if path.parent != self.profiles:
            raise SyscageError(f"profile {name!r} resolves outside the store", "use a plain name")
        return path

    def names(self) -> list[str]:
        try:
            return sorted(p.name for p in self.profiles.iterdir() if (p / PROFILE_FILE).is_file())
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

    def record_run(self, name: str, obs: Observation) -> dict[str, Any]:
        """Merge one run into the profile and re-render its seccomp.json; returns the new profile."""
        from syscage.profile import merge

        return self._update(name, lambda current, now: merge(current, obs, now), create=True)

    def accept(self, name: str) -> dict[str, Any]:
        from syscage.profile import accept

        return self._update(name, accept, create=False)

    def _update(self, name: str, change: Callable[[dict[str, Any], str], dict[str, Any]],
                create: bool) -> dict[str, Any]:
        with self.locked(name):
            current = self.read(name)
            now = utc_now()
            if current is None:
                from syscage.profile import new_profile
                from syscage.syscalls import native_arch

                if not create:
                    raise SyscageError(f"no profile named {name}", "list profiles with `syscage list`")
                current = new_profile(name, native_arch(), now)
            updated = change(current, now)
            self._write(name, updated)
            return updated

    def _write(self, name: str, profile: dict[str, Any]) -> None:
        directory = self.profile_dir(name)
        from syscage.seccomp import render, render_profile

        # Most runs add no syscall: then seccomp.json (compiled when it was written) stays as it is.
        # Otherwise render and compile before writing anything: a profile that cannot become a filter
        # is refused whole rather than stored beside a stale seccomp.json.
        unchanged = self.read_seccomp(name) == render(list(profile["syscalls"]), self.errno, profile["arch"])
        seccomp = None if unchanged else render_profile(profile, self.errno)
        write_atomically(directory / PROFILE_FILE, dump_json(profile))
        if seccomp is not None:
            write_atomically(directory / SECCOMP_FILE, dump_json(seccomp))

    @contextlib.contextmanager
    def locked(self, name: str) -> Iterator[None]:
        directory = self.profile_dir(name)
        directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
