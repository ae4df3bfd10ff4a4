"""Does the real runtime pass the OCI seccomp flag SECCOMP_FILTER_FLAG_LOG on to the kernel?

An SCMP_ACT_ERRNO denial leaves a kernel record only when the filter was loaded with that flag (and
"errno" is in /proc/sys/kernel/seccomp/actions_logged). Measured here: crun 1.8.1 passes it on (the
record appears); runc 1.1.5 refuses any spec with seccomp flags ("seccomp flags are not yet supported by
runc"), so the flag must never be given to it: the container would not start. runc 1.2 and later list
what they support in `runc features` (linux.seccomp.supportedFlags).

The answer is asked of the runtime once per binary (`RUNTIME features`, about 10 ms) and cached in the run
directory, keyed by the binary's identity (device, inode, size, mtime): the start path pays one stat and
one small read. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

FLAG = "SECCOMP_FILTER_FLAG_LOG"
CACHE_DIR = "runtime-features"


def _identity(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def supports_log_flag(runtime: str, run_dir: str | os.PathLike[str], write_cache: bool = True) -> tuple[bool, str]:
    """(True, why) when the runtime passes SECCOMP_FILTER_FLAG_LOG on; (False, why not) otherwise. write_cache:
    keep the answer (False: `syscage doctor`, which changes nothing on the host)."""
    identity = _identity(runtime)
    if identity is None:
        return False, f"runtime {runtime} cannot be found"
    cache = os.path.join(os.fspath(run_dir), CACHE_DIR, hashlib.sha256(runtime.encode()).hexdigest()[:16] + ".json")
    try:
        with open(cache, "rb") as f:
            doc = json.load(f)
        if doc.get("identity") == identity and isinstance(doc.get("log_flag"), bool):
            return doc["log_flag"], str(doc.get("why", ""))
    except (OSError, ValueError, AttributeError):
        pass
    answer, why = probe(runtime)
    if not write_cache:
        return answer, why
    try:
        from syscage.atomic import write_atomically

        os.makedirs(os.path.dirname(cache), mode=0o700, exist_ok=True)
        write_atomically(cache, json.dumps({"runtime": runtime, "identity": identity, "log_flag": answer,
                                            "why": why}).encode(), 0o600, durable=False)
    except OSError:
        pass
    return answer, why


def _run(runtime: str, *args: str) -> tuple[int, str]:
    from syscage.standard import LOOP_GUARD

    try:
        done = subprocess.run([runtime, *args], capture_output=True, text=True, timeout=10, check=False,
                              stdin=subprocess.DEVNULL, env={**os.environ, LOOP_GUARD: "1"})
    except (OSError, subprocess.SubprocessError) as exc:
        return 127, str(exc)
    return done.returncode, done.stdout + done.stderr


def probe(runtime: str) -> tuple[bool, str]:
    code, version = _run(runtime, "--version")
    first = version.strip().splitlines()[0] if version.strip() else os.path.basename(runtime)
    code, out = _run(runtime, "features")
    features = None
    if code == 0:
        try:
            features = json.loads(out)
        except ValueError:
            features = None
    if isinstance(features, dict):
        seccomp = (features.get("linux") or {}).get("seccomp") or {}
        supported = seccomp.get("supportedFlags")
        if isinstance(supported, list):
            if FLAG in supported:
                return True, f"{first}: `features` lists {FLAG} among its supported seccomp flags"
            return False, f"{first}: `features` does not list {FLAG} among its supported seccomp flags"
        # runc 1.1 has `features` but no flags in it: it refuses every seccomp flag.
        return False, (f"{first} refuses seccomp flags (\"seccomp flags are not yet supported by runc\"), so "
                       "its errno denials leave no kernel record")
    if first.startswith("crun"):
        return True, f"{first} passes seccomp flags on to the kernel (checked with crun 1.8.1)"
    return False, f"{first}: cannot tell whether it passes seccomp flags on, so none are given"
