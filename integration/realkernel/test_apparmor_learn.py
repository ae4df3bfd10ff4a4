"""Learning what AppArmor mediates, in a kernel with AppArmor and kprobes, then enforcing it.

Runs inside the guest only (see integration/guest.py). One learning pass for the module (the tracer's start
under emulation, loading bcc's libraries over 9p and the BPF compile, takes minutes on a loaded host):
container A runs the workload while container B, learning another profile at the same time, creates a raw
socket (CAP_NET_RAW), then C names files relative to its cwd and to a directory fd. Then A's profile is enforced through
syscage-runtime: the workload still succeeds, and what A never did is denied by AppArmor (the same command
succeeds in the same container without syscage, and the syscall is one A made, so seccomp allows it).
Files are recorded but not yet trusted (README: what learning does not see yet), so `file,` is rendered.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from integration.conftest import VENV_BIN, Env
from integration.env import rootfs_with_program
from integration.test_wrapper_runc import call
from syscage.apparmor import render_checked
from syscage.apparmor_paths import Glob, generalise
from syscage.config import load_config
from syscage.hooks.client import request, start_tracer

WRAPPER = str(VENV_BIN / "syscage-runtime")
CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_CHOWN", "CAP_NET_RAW"]
WORKLOAD = ("cat /etc/hostname; (cd /etc && cat group >/dev/null); echo x > /tmp/out; /bin/ls / >/dev/null; "
            "nc 127.0.0.1 9 </dev/null; "
            "logger -t syscage hi; touch /tmp/f && chown 1 /tmp/f && echo chowned; echo workload-done")
RAW = "ping -c 1 -W 1 127.0.0.1; echo ping-done"
INET6 = "nc ::1 9 </dev/null; echo nc6-done"


def spec_bundle(env: Env, script: str, *, profile: str | None, mode: str | None) -> Path:
    """A busybox bundle running `script` with CAPS; learning (hooks, allow-all filter) or through the wrapper."""
    learn = mode == "learn"
    base = env.bundle(["sh", "-c", script], profile=profile, learn=learn, seccomp="allow-all" if learn else None)
    spec: dict[str, Any] = json.loads((base / "config.json").read_text())
    spec["process"]["capabilities"] = {k: CAPS for k in ("bounding", "effective", "permitted")}
    if mode == "enforce":
        spec.setdefault("annotations", {}).update({"io.syscage.mode": "enforce", "io.syscage.profile": profile})
    (base / "config.json").write_text(json.dumps(spec))
    return base


@pytest.fixture(scope="module")
def learned(env: Env) -> dict[str, dict[str, Any]]:
    a, b, c = env.name("aa-learn-a"), env.name("aa-learn-b"), env.name("aa-learn-c")
    # C: relative, dirfd-relative and non-open path operations (integration/programs/path_ops.c).
    ops = spec_bundle(env, "/bin/path-ops", profile=c, mode="learn")
    spec = json.loads((ops / "config.json").read_text())
    spec["root"]["path"] = str(rootfs_with_program(env.rootfs, env.root / "rootfs-path-ops", "path_ops", "path-ops"))
    (ops / "config.json").write_text(json.dumps(spec))
    # The tracer's BPF compile is slow under emulation (longer than a hook may take): start it here, once.
    config = load_config(env.config_path)
    start_tracer(config, time.monotonic() + 600)
    status = request(config, {"op": "status"})
    print(f"\ntracer compile in the guest: {status.get('compile_seconds')} s")
    results: dict[str, Any] = {}
    slow = threading.Thread(target=lambda: results.setdefault("a", env.runc(
        "run", env.name("c"), bundle=spec_bundle(env, WORKLOAD + "; sleep 4", profile=a, mode="learn"), timeout=300)))
    slow.start()
    try:
        results["b"] = env.runc("run", env.name("c"), bundle=spec_bundle(env, RAW, profile=b, mode="learn"),
                                timeout=300)
        results["c"] = env.runc("run", env.name("c"), bundle=ops, timeout=300)
    finally:
        slow.join()
    assert results["a"].returncode == 0 and "chowned" in results["a"].stdout, results["a"].stdout + results["a"].stderr
    assert results["b"].returncode == 0, results["b"].stdout + results["b"].stderr
    assert results["c"].returncode == 0, results["c"].stdout + results["c"].stderr
    return {"a": env.profile(a), "b": env.profile(b), "c": env.profile(c)}


def run(env: Env, path: Path) -> str:
    done = call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(path), env.name("c"))
    return done.stdout + done.stderr


def test_learning_records_capabilities_sockets_and_files(learned: dict[str, dict[str, Any]]) -> None:
    a, b = learned["a"], learned["b"]
    assert a["capabilities_traced"] is True and a["network_traced"] is True
    assert "chown" in a["capabilities"] and "net_raw" not in a["capabilities"]
    assert "net_raw" in b["capabilities"] and "chown" not in b["capabilities"]  # no leak either way
    assert {"inet stream", "unix dgram"} <= set(a["network"]) and "inet raw" not in a["network"]
    assert "inet raw" in b["network"] and "inet stream" not in b["network"]
    assert set(a["files"]["/etc/hostname"]["access"]) == {"r"} and "x" in a["files"]["/bin/ls"]["access"]
    assert {"w", "c"} <= set(a["files"]["/tmp/out"]["access"]) and "/tmp/out" not in b["files"]
    assert a["files_traced"] is False  # recorded, not yet trusted
    for profile in (a, b):
        text = render_checked(profile)
        assert "  capability,\n" not in text and "  network,\n" not in text and "  file,\n" in text
    for label, p in (("A", a), ("B", b), ("C", learned["c"])):
        execs = sorted(f for f, e in p["files"].items() if "x" in e["access"])
        created = {f for f, e in p["files"].items() if "c" in e["access"]}
        generalised = sum(1 for f in p["files"] if any(isinstance(part, Glob) for part in generalise(f, created)))
        lost = {k: v for k, v in p["runs"][0]["counters"].items() if k.startswith(("paths_", "sockets_", "caps_"))}
        print(f"\nlearned {label}: {len(p['files'])} files ({len(execs)} exec: {execs}, {generalised} generalised),"
              f" network {sorted(p['network'])}, capabilities {sorted(p['capabilities'])}, lost {lost}")


def test_relative_and_dirfd_relative_names_are_learned_as_container_paths(learned: dict[str, dict[str, Any]]) -> None:
    a, c = learned["a"], learned["c"]
    assert set(a["files"]["/etc/group"]["access"]) == {"r"}  # `cd /etc && cat group`
    access = {path: set(entry["access"]) for path, entry in c["files"].items()}
    assert access["/etc/passwd"] == {"r"} and access["/dev/null"] == {"w"}  # dirfd-relative; cwd in a mount
    assert access["/tmp/moved/"] == {"c", "w", "d"} and access["/tmp/hard"] == {"l", "d"}
    assert access["/bin/path-ops"] == {"x", "r", "k", "m"}  # flock and mmap(PROT_EXEC) of an open fd
    assert "/tmp/made/" in access and "/etc/group" not in c["files"]  # no leak between the two
    for profile in (a, c):
        counters = profile["runs"][0]["counters"]
        assert counters["paths_unresolved"] == 0 and counters["paths_truncated"] == 0, counters
        render_checked(profile)


def test_enforced_workload_succeeds_and_the_rest_is_denied_by_apparmor(env: Env,
                                                                       learned: dict[str, dict[str, Any]]) -> None:
    name = learned["a"]["name"]
    label = f"syscage-{name}"
    out = run(env, spec_bundle(env, f"cat /proc/self/attr/current; {WORKLOAD}", profile=name, mode="enforce"))
    assert f"{label} (enforce)" in out and "chowned" in out and "workload-done" in out, out
    # Without syscage the same container creates the raw and the IPv6 socket (the error, if any, is later).
    free = run(env, spec_bundle(env, f"{RAW}; {INET6}", profile=None, mode=None))
    assert "raw socket" not in free and "socket: Permission denied" not in free, free
    # Under the learned profile: socket() is in the learned seccomp set, AppArmor refuses the kinds A never used.
    out = run(env, spec_bundle(env, f"{RAW}; {INET6}", profile=name, mode="enforce"))
    assert "can't create raw socket: Permission denied" in out and "ping-done" in out, out
    assert "socket: Permission denied" in out and "nc6-done" in out, out
