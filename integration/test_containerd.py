"""Through containerd: configured once (BinaryName or the io.containerd.syscage.v2 handler), toggled per
container by annotation, learned and then enforced."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest

from integration.containerd import Containerd
from integration.env import VENV_BIN, Env, analysed, write_config

WRAPPER = str(VENV_BIN / "syscage-runtime")
HANDLER = "io.containerd.syscage.v2"
WORKLOAD = ["sh", "-c", "echo hi; ls /; grep Seccomp: /proc/1/status"]
RUNTIME_SETUP = {"pivot_root", "mount", "sethostname", "umount2"}


def rootfs(env: Env) -> Path:
    """A private copy: ctr mounts --rootfs writable, and tests write into it."""
    target = env.root / "rootfs-copies" / env.name("r")
    shutil.copytree(env.rootfs, target, symlinks=True)
    return target


def learn(profile: str) -> dict[str, str]:
    return {"io.syscage.mode": "learn", "io.syscage.profile": profile}


def enforce(profile: str) -> dict[str, str]:
    return {"io.syscage.mode": "enforce", "io.syscage.profile": profile}


@pytest.mark.parametrize("via", ["binary-name", "handler"])
def test_learn_through_containerd(env: Env, containerd: Containerd, via: str) -> None:
    name = env.name(f"ctr-{via}")
    kwargs = {"runc_binary": WRAPPER} if via == "binary-name" else {"runtime": HANDLER}
    cid = env.name("c")
    result = containerd.run(rootfs(env), cid, WORKLOAD, learn(name), **kwargs)  # type: ignore[arg-type]
    assert result.returncode == 0, result.stderr
    assert "hi" in result.stdout
    profile = env.profile(name)
    learned = set(profile["syscalls"])
    assert {"execve", "write", "getdents64", "openat", "read"} <= learned
    assert not learned & RUNTIME_SETUP
    assert profile["complete"] and profile["runs"][0]["cutover"] == "seccomp"
    # The shim's `runc delete` went through syscage-runtime, which recorded the run: no poststop hook process.
    prepared = [e for e in map(json.loads, env.log_file.read_text().splitlines())
                if e.get("event") == "spec prepared" and e.get("container_id") == cid]
    assert [e["run_recorded_at"] for e in prepared] == ["delete"]
    # What the run exec'd was read in its rootfs (containerd's mount, still there when the run is recorded).
    static = analysed(env, name, 1)
    assert static["programs"] == ["/bin/busybox"] and not static["unresolved_total"], static
    assert {"write", "getdents64", "openat"} <= set(static["syscalls"])


@pytest.mark.parametrize("via", ["binary-name", "handler"])
def test_enforce_through_containerd(env: Env, containerd: Containerd, via: str) -> None:
    name = env.name(f"enf-{via}")
    kwargs = {"runc_binary": WRAPPER} if via == "binary-name" else {"runtime": HANDLER}
    fs = rootfs(env)
    learned = containerd.run(fs, env.name("c"), WORKLOAD, learn(name), **kwargs)  # type: ignore[arg-type]
    assert learned.returncode == 0, learned.stderr

    enforced = containerd.run(fs, env.name("c"), WORKLOAD, enforce(name), **kwargs)  # type: ignore[arg-type]
    assert enforced.returncode == 0, enforced.stderr
    assert enforced.stdout == learned.stdout
    assert "Seccomp:\t2" in enforced.stdout  # a filter really is in force

    denied = containerd.run(fs, env.name("c"), ["mkdir", "/tmp/never-learned"], enforce(name),
                            **kwargs)  # type: ignore[arg-type]
    assert denied.returncode != 0
    assert "Operation not permitted" in denied.stderr + denied.stdout
    assert not (fs / "tmp" / "never-learned").exists()


CAPTURE = """#!{python}
# Records the spec each `create` hands the runtime, then runs the real runc.
import os, shutil, sys
from syscage.shim.argv import parse_create, parse_global
args = sys.argv[1:]
sub, i, _ = parse_global(args)
if sub == "create":
    out = "{capture}"
    shutil.copy(parse_create(args, i).config, os.path.join(out, str(len(os.listdir(out)))))
os.execv("/usr/sbin/runc", ["runc", *args])
"""


def test_unannotated_container_is_untouched(env: Env, containerd: Containerd) -> None:
    capture_dir = env.root / "captured"
    capture_dir.mkdir()
    capture = env.root / "capture-runc"
    capture.write_text(CAPTURE.format(python=VENV_BIN / "python", capture=capture_dir))
    capture.chmod(capture.stat().st_mode | stat.S_IXUSR)
    fs = rootfs(env)
    args = ["sh", "-c", "echo out; echo err >&2; exit 3"]
    direct = containerd.run(fs, "same-id", args, runc_binary=str(capture))
    write_config(env.config_path, env.root, runtime={"path": str(capture)})
    try:
        wrapped = containerd.run(fs, "same-id", args, runc_binary=WRAPPER)
    finally:
        write_config(env.config_path, env.root)
    assert (wrapped.returncode, wrapped.stdout, wrapped.stderr) == (direct.returncode, direct.stdout, direct.stderr)
    assert direct.returncode == 3 and direct.stdout == "out\n"
    first, second = (capture_dir / "0").read_bytes(), (capture_dir / "1").read_bytes()
    assert first == second  # byte-identical spec reached runc


def _corrupt(env: Env, name: str) -> None:
    directory = env.store / "profiles" / name
    directory.mkdir(parents=True)
    (directory / "profile.json").write_text('{"kind": "syscage-profile", "schema": 1, "na')


def _incomplete(env: Env, name: str) -> None:
    # A learning run whose tracer had no record of it: recorded, but incomplete.
    from syscage.profile import Observation

    obs = Observation(container_id="x", started="t", stopped="t", cutover="none", syscalls=["read"],
                      problems=["the tracer was not running at poststop"])
    env.profile_store().record_run(name, obs)


@pytest.mark.parametrize("problem", ["missing", "corrupt", "incomplete"])
def test_enforce_refuses_unusable_profile(env: Env, containerd: Containerd, problem: str) -> None:
    name = env.name(problem)
    if problem == "corrupt":
        _corrupt(env, name)
    elif problem == "incomplete":
        _incomplete(env, name)
    cid = env.name("c")
    result = containerd.run(rootfs(env), cid, ["echo", "should-not-run"], enforce(name), runc_binary=WRAPPER)
    assert result.returncode != 0
    assert "should-not-run" not in result.stdout
    assert f"profile {name}" in result.stderr and problem in result.stderr.replace("does not exist", "missing")
    assert cid not in containerd.ctr("containers", "ls", "-q").stdout.split()


def test_enforce_allow_policy_runs_unconfined_and_logs(env: Env, containerd: Containerd) -> None:
    name = env.name("allowed")
    write_config(env.config_path, env.root, enforce={"on_missing_profile": "allow"})
    try:
        result = containerd.run(rootfs(env), env.name("c"), ["grep", "Seccomp:", "/proc/1/status"], enforce(name),
                                runc_binary=WRAPPER)
    finally:
        write_config(env.config_path, env.root)
    assert result.returncode == 0, result.stderr
    assert "Seccomp:\t0" in result.stdout
    entries = [json.loads(line) for line in env.log_file.read_text().splitlines()]
    assert any("UNCONFINED" in e["event"] and e.get("profile") == name for e in entries)
