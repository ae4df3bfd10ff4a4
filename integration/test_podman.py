"""podman, for real: Debian's podman learns through the hooks.d file `syscage install hooks-dir` writes, and
enforces the profile `syscage export --format oci` wrote through --security-opt seccomp=FILE."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.env import VENV_BIN, Env, write_config
from integration.test_wrapper_runc import _stop_tracer_of

WORKLOAD = ["sh", "-c", "mkdir /tmp/made && rmdir /tmp/made && sync && echo learned"]
UNLEARNED = ["sh", "-c", "mknod /tmp/fifo p; echo rc=$?; rm -f /tmp/fifo"]


@pytest.fixture(scope="module")
def podman(env: Env) -> Iterator[tuple[list[str], Path, dict[str, str]]]:
    """podman with private storage and its own syscage config (store, run directory, tracer); the hooks.d
    directory that config's `syscage install hooks-dir` wrote."""
    if shutil.which("podman") is None:
        raise RuntimeError("podman is not installed (make deps installs it)")
    root = env.root / env.name("podman")
    root.mkdir()
    config = root / "config.toml"
    write_config(config, root, convergence={"min_runs": 1}, tracer={"start_timeout": 300})
    environ = {"PATH": f"{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "SYSCAGE_CONFIG": str(config)}
    hooks = root / "hooks.d"
    done = subprocess.run([str(VENV_BIN / "syscage"), "install", "hooks-dir", str(hooks)], capture_output=True,
                          text=True, env=environ, check=False)
    assert done.returncode == 0, done.stderr
    # vfs: nothing stays mounted after the test (--rootfs containers need no image layers).
    runroot = Path(tempfile.mkdtemp(prefix="scpm-"))  # podman refuses a runroot path longer than 50 characters
    base = ["podman", "--root", str(root / "storage"), "--runroot", str(runroot), "--cgroup-manager",
            "cgroupfs", "--events-backend", "file", "--storage-driver", "vfs", "--hooks-dir", str(hooks)]
    yield base, root, environ
    _stop_tracer_of(root / "run")
    shutil.rmtree(runroot, ignore_errors=True)


def _run(podman: list[str], rootfs: Path, args: list[str], *flags: str) -> subprocess.CompletedProcess[str]:
    # This machine's root lacks CAP_SYS_RESOURCE: podman's default limits cannot be set, so give some.
    return subprocess.run([*podman, "run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024",
                           "--ulimit", "nproc=1024:1024", *flags, "--rootfs", str(rootfs), *args],
                          capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL)


def test_podman_learns_through_hooks_and_enforces_the_exported_file(env: Env, podman: tuple[list[str], Path,
                                                                                            dict[str, str]]) -> None:
    base, root, environ = podman
    name = env.name("podman")
    rootfs = root / "rootfs"
    shutil.copytree(env.rootfs, rootfs, symlinks=True)
    for _ in range(2):  # the second run brings nothing new: converged under min_runs = 1
        learned = _run(base, rootfs, WORKLOAD, "--annotation", "io.syscage.mode=learn",
                       "--annotation", f"io.syscage.profile={name}")
        assert learned.returncode == 0 and learned.stdout == "learned\n", learned.stderr
    profile = json.loads((root / "store" / "profiles" / name / "profile.json").read_text())
    assert profile["complete"], profile["incomplete_reasons"]
    assert {"mkdir", "mkdirat"} & set(profile["syscalls"]) and "sync" in profile["syscalls"]
    assert "mknodat" not in profile["syscalls"] and len(profile["runs"]) == 2

    exported = root / f"{name}.json"
    done = subprocess.run([str(VENV_BIN / "syscage"), "export", name, "--format", "oci", "-o", str(exported)],
                          capture_output=True, text=True, env=environ, check=False)
    assert done.returncode == 0, done.stderr
    enforced = _run(base, rootfs, WORKLOAD, "--security-opt", f"seccomp={exported}")
    assert enforced.returncode == 0 and enforced.stdout == "learned\n", enforced.stderr
    denied = _run(base, rootfs, UNLEARNED, "--security-opt", f"seccomp={exported}")
    assert "Operation not permitted" in denied.stderr + denied.stdout and "rc=1" in denied.stdout, denied
    # Without the profile (podman's default filter) the same container may mknod: the denial is the profile's.
    free = _run(base, rootfs, UNLEARNED)
    assert "rc=0" in free.stdout, free
