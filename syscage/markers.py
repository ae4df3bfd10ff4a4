"""Learning markers: how syscage-runtime's `delete` knows, at the cost of one stat, that the container it
deletes was created learning (and so records its run, in place of a poststop hook process).

A marker is <run_dir>/learning/<runtime root, escaped>/<container id>, written at `create` and holding
the container's profile and mode, its nonce (the tracer hands its watch only to a record naming it: ids are
reused), and the tracer's socket and how long to wait for it (so that `delete` records without loading the
config). Only `os` at import time: this runs on the passthrough path.
"""

from __future__ import annotations

import os

LEARNING_DIR = "learning"


def marker_path(run_dir: str, runtime_root: str | None, container_id: str | None) -> str | None:
    """Where the marker of this container lives, or None for an id that is not a plain file name."""
    if not container_id or container_id.startswith(".") or "/" in container_id or "\0" in container_id:
        return None
    # Container ids are unique per runtime root (containerd uses one per namespace). The prefix keeps a
    # root of "." or ".." from naming a directory above ours.
    root_key = "root=" + runtime_root.replace("%", "%25").replace("/", "%2F") if runtime_root else "default"
    if len(container_id) > 200 or len(root_key) > 200:
        return None
    return os.path.join(run_dir, LEARNING_DIR, root_key, container_id)


def write_marker(path: str, container_id: str, runtime_root: str | None, profile: str, mode: str,
                 tracer_socket: str, timeout: float, nonce: str = "") -> None:
    """Atomically: a `delete` never reads half a marker. /run is tmpfs, so not durably."""
    import json

    from syscage.atomic import write_atomically

    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    doc = {"container_id": container_id, "runtime_root": runtime_root or "", "profile": profile, "mode": mode,
           "socket": tracer_socket, "timeout": timeout, "nonce": nonce}
    write_atomically(path, json.dumps(doc).encode(), 0o600, durable=False)


def read_marker(path: str, container_id: str, runtime_root: str | None) -> dict[str, object] | None:
    """The marker's content, or None if it is unreadable or belongs to another container."""
    import json

    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("container_id") != container_id:
        return None
    if doc.get("runtime_root") != (runtime_root or ""):
        return None
    if not all(isinstance(doc.get(k), str) and doc.get(k) for k in ("profile", "mode", "socket")):
        return None
    if not isinstance(doc.get("nonce", ""), str):
        return None
    timeout = doc.get("timeout")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        return None
    return doc


def container_exists(runtime: str, runtime_root: str | None, container_id: str) -> bool | None:
    """Whether the runtime has state for this container (runc and crun keep <root>/<id>/). Without --root,
    for a runtime binary named neither runc nor crun, the runtime is asked (`state`); None if it cannot be."""
    name = os.path.basename(runtime)
    root = runtime_root or ("/run/crun" if name.startswith("crun") else "/run/runc" if name.startswith("runc")
                            else None)
    if root is not None:
        return os.path.isdir(os.path.join(root, container_id))
    import subprocess  # the rare case: no --root and an unusual runtime name

    from syscage.standard import LOOP_GUARD

    try:
        done = subprocess.run([runtime, "state", container_id], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=30, check=False,
                              env={**os.environ, LOOP_GUARD: "1"})
    except (OSError, subprocess.SubprocessError):
        return None
    return done.returncode == 0


def claim_marker(path: str) -> str | None:
    """Take the marker for recording (rename): of two concurrent deletes, one records. The claimed path."""
    claimed = f"{path}.claimed.{os.getpid()}"
    try:
        os.rename(path, claimed)
    except OSError:
        return None
    return claimed


def remove_marker(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        return  # none there: the usual case
