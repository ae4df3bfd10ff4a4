"""Which container a kernel denial record belongs to, even after its process is gone.

A seccomp (type 1326) record names a host pid, a time and a syscall; nothing about the container. So at
`create` of an enforce or complain container syscage-runtime notes, in RUN_DIR/containers/:

  <stamp>-<nonce>.json   container id, profile, mode, runtime, its cgroupsPath, whether the filter carries
                         SECCOMP_FILTER_FLAG_LOG (an errno denial leaves a record only then), created time
  <stamp>-<nonce>.state  the runtime's state (OCI, with the init pid), copied there by a prestart hook that
                         is a shell one-liner (no Python on the start path)

`syscage denials` maps a record's pid to its container by, in order: the live process's cgroup (exact while
it runs), the init pid of a container alive at the record's time (exact: an init pid cannot be reused while
its container lives), and pids it resolved live before (kept in RUN_DIR/containers/pids.json). The run
directory is a tmpfs like the kernel's log buffer: both end at reboot.

Only `os` and `json` at import time: the writing half runs on the container's start path.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

from syscage.names import NOTE_TAG

NOTES_DIR = "containers"
PID_CACHE = "pids.json"
# NOTE_TAG (syscage.names) is args[3] of the hook entry: sh -c SCRIPT TAG STATE_FILE
SHELL = "/bin/sh"
# $1: where the state goes. A bundle reused after its notes directory went (a reboot) does nothing; a note
# that cannot be written never fails the container (the runtime's state is read whole either way).
HOOK_SCRIPT = '[ -d "${1%/*}" ] && cat > "$1" 2>/dev/null || cat > /dev/null; exit 0'
HOOK_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def notes_dir(run_dir: str | os.PathLike[str]) -> str:
    return os.path.join(os.fspath(run_dir), NOTES_DIR)


def write_note(run_dir: str | os.PathLike[str], container_id: str, profile: str, mode: str, runtime: str,
               runtime_root: str | None, bundle: str, cgroups_path: str | None, log_flag: bool | None,
               log_flag_why: str) -> str:
    """Note a container at create; returns the path its prestart hook copies the runtime's state to."""
    from syscage.atomic import write_atomically

    directory = notes_dir(run_dir)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    now = time.time()
    stem = f"{int(now * 1e6):017d}-{os.urandom(4).hex()}"
    doc = {"container_id": container_id, "profile": profile, "mode": mode, "runtime": runtime,
           "runtime_root": runtime_root or "", "bundle": bundle, "cgroups_path": cgroups_path or "",
           "created": now, "log_flag": log_flag, "log_flag_why": log_flag_why}
    write_atomically(os.path.join(directory, stem + ".json"), json.dumps(doc).encode(), 0o600, durable=False)
    return os.path.join(directory, stem + ".state")


def hook_entry(state_path: str, timeout: int) -> dict[str, Any]:
    return {"path": SHELL, "args": ["sh", "-c", HOOK_SCRIPT, NOTE_TAG, state_path], "timeout": timeout,
            "env": [HOOK_PATH]}


def read_notes(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every noted container, oldest first, each with "pid" (its init pid, if its hook ran) and "note"."""
    directory = notes_dir(run_dir)
    try:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".json") and n != PID_CACHE)
    except OSError:
        return []
    found = []
    for name in names:
        stem = name[:-len(".json")]
        try:
            with open(os.path.join(directory, name), "rb") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("container_id"), str):
            continue
        doc["note"] = stem
        doc["pid"] = _state_pid(os.path.join(directory, stem + ".state"))
        found.append(doc)
    return found


def _state_pid(path: str) -> int | None:
    try:
        with open(path, "rb") as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    pid = state.get("pid") if isinstance(state, dict) else None
    return pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None


def read_pid_cache(run_dir: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """pid (as text) -> {"note": the container's note, "seen": when it was seen alive in that container}."""
    try:
        with open(os.path.join(notes_dir(run_dir), PID_CACHE), "rb") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def write_pid_cache(run_dir: str | os.PathLike[str], cache: dict[str, dict[str, Any]]) -> None:
    from syscage.atomic import write_atomically

    directory = notes_dir(run_dir)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        write_atomically(os.path.join(directory, PID_CACHE), json.dumps(cache).encode(), 0o600, durable=False)
    except OSError:
        return  # a cache: the next run resolves what it can again


def forget_notes(run_dir: str | os.PathLike[str], stems: list[str]) -> None:
    for stem in stems:
        for suffix in (".json", ".state"):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(notes_dir(run_dir), stem + suffix))


def cgroup_of(pid: int) -> str | None:
    """The cgroup v2 path of a live process (the unified hierarchy's line, "0::"), else its first v1 path."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            return line[3:]
    return lines[0].split(":", 2)[-1] if lines else None


def cgroup_matches(cgroup: str, note: dict[str, Any]) -> bool:
    """Does a process cgroup path belong to this noted container? Its cgroupsPath (a path, or systemd's
    slice:prefix:name), else a path component naming the container id (runc's and containerd's defaults)."""
    wanted = note.get("cgroups_path") or ""
    parts = [p for p in cgroup.split("/") if p]
    if wanted.startswith("/"):
        want = [p for p in wanted.split("/") if p]
        # The container's own cgroup, or one it made below it.
        if want and f"/{'/'.join(want)}/" in f"/{'/'.join(parts)}/":
            return True
    elif wanted.count(":") == 2:  # systemd driver: slice:prefix:name -> .../prefix-name.scope
        _, prefix, name = wanted.split(":")
        if parts and parts[-1] in (f"{prefix}-{name}.scope", name):
            return True
    cid = note.get("container_id")
    return bool(cid) and (cid in parts or any(p.endswith(f"-{cid}.scope") for p in parts))


def note_modifiers(config: Any, container_id: str, profile: str, mode: str, bundle: str, spec: dict[str, Any],
                   runtime_root: str | None, log: Any) -> list[Any]:
    """For an enforce or complain container under a profile's filter: the note, the prestart hook that
    copies the runtime's state beside it, and (enforce, where the runtime passes it on) SECCOMP_FILTER_FLAG_LOG
    on the filter, so that errno denials leave kernel records. A note that cannot be written costs only
    `syscage denials` its container (it says so); it never fails the container."""
    from syscage.logflag import FLAG, supports_log_flag

    runtime = str(config.runtime_path)
    if mode == "enforce":
        log_flag, why = supports_log_flag(runtime, config.run_dir)
    else:
        log_flag, why = None, "complain: SCMP_ACT_LOG is always logged"
    linux = spec.get("linux")
    cgroups_path = linux.get("cgroupsPath") if isinstance(linux, dict) else None
    try:
        state_path = write_note(config.run_dir, container_id, profile, mode, runtime, runtime_root, bundle,
                                cgroups_path if isinstance(cgroups_path, str) else None, log_flag, why)
    except OSError as exc:
        log.warning("no denials note for this container: `syscage denials` cannot name it", error=str(exc))
        state_path = None

    def modify(spec: dict[str, Any]) -> dict[str, Any]:
        out = dict(spec)
        if log_flag:
            out["linux"] = dict(out.get("linux") or {})
            seccomp = dict(out["linux"].get("seccomp") or {})
            flags = list(seccomp.get("flags") or [])
            if FLAG not in flags:
                seccomp["flags"] = [*flags, FLAG]
            out["linux"]["seccomp"] = seccomp
        if state_path is not None:
            hooks = dict(out.get("hooks") or {})
            hooks["prestart"] = [*(hooks.get("prestart") or []), hook_entry(state_path, config.hook_timeout)]
            out["hooks"] = hooks
        return out

    log.info("denials visible" if mode == "complain" or log_flag else "errno denials leave no kernel record",
             log_flag=log_flag, reason=why)
    return [modify]
