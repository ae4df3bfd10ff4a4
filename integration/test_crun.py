"""crun behind syscage-runtime: learn and enforce work the same as with runc."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.env import Env, write_config
from integration.test_wrapper_runc import WRAPPER, call

CRUN = shutil.which("crun") or "/usr/bin/crun"
UNIFIED = Path("/sys/fs/cgroup/unified")


def _crun_ready_for_hybrid_cgroups() -> None:
    """crun refuses a hybrid cgroup layout whose v2 tree still owns controllers (here: hugetlb, which no
    v1 hierarchy claims). Bind those controllers to v1 hierarchies, as a hybrid host normally has them."""
    controllers = (UNIFIED / "cgroup.controllers").read_text().split() if UNIFIED.is_dir() else []
    for controller in controllers:
        target = Path("/sys/fs/cgroup") / controller
        target.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup", "-o", controller, "cgroup", str(target)], check=True)


@pytest.fixture
def crun_env(env: Env) -> Iterator[Env]:
    _crun_ready_for_hybrid_cgroups()
    write_config(env.config_path, env.root, runtime={"path": CRUN})
    try:
        yield env
    finally:
        write_config(env.config_path, env.root)


def test_learn_and_enforce_with_crun(crun_env: Env) -> None:
    env = crun_env
    name = env.name("crun")
    workload = ["sh", "-c", "echo hi; ls /"]
    learn = env.bundle(workload, learn=False, seccomp=None,
                       annotations={"io.syscage.mode": "learn", "io.syscage.profile": name})
    learned = call(WRAPPER, "--root", str(env.root / "crun-state"), "run", "-b", str(learn), env.name("c"))
    assert learned.returncode == 0, learned.stderr
    profile = env.profile(name)
    run = profile["runs"][0]
    assert run["runtime"].startswith("crun version") and run["cutover"] == "seccomp"
    assert profile["complete"], profile["incomplete_reasons"]
    assert {"execve", "write", "getdents64"} <= set(profile["syscalls"])
    assert not set(profile["syscalls"]) & {"pivot_root", "mount", "sethostname", "umount2"}

    enforce = env.bundle([*workload], learn=False, seccomp=None,
                         annotations={"io.syscage.mode": "enforce", "io.syscage.profile": name})
    enforced = call(WRAPPER, "--root", str(env.root / "crun-state"), "run", "-b", str(enforce), env.name("c"))
    assert enforced.returncode == 0, enforced.stderr
    assert enforced.stdout == learned.stdout
    denied_bundle = env.bundle(["mkdir", "/tmp/nope"], learn=False, seccomp=None,
                               annotations={"io.syscage.mode": "enforce", "io.syscage.profile": name})
    denied = call(WRAPPER, "--root", str(env.root / "crun-state"), "run", "-b", str(denied_bundle), env.name("c"))
    assert denied.returncode != 0 and "Operation not permitted" in denied.stderr


def test_create_start_delete_with_crun(crun_env: Env) -> None:
    """The containerd path with crun as the real runtime: the prestart relay answers crun's hook, and
    syscage-runtime's delete records the run."""
    env = crun_env
    name, cid = env.name("crun-create"), env.name("c")
    root = ["--root", str(env.root / "crun-state")]
    bundle = env.bundle(["sh", "-c", "echo hi; ls /"], learn=False, seccomp=None,
                        annotations={"io.syscage.mode": "learn", "io.syscage.profile": name})
    created = call(WRAPPER, *root, "create", "--bundle", str(bundle), cid)
    assert created.returncode == 0, created.stderr
    assert call(WRAPPER, *root, "start", cid).returncode == 0
    for _ in range(300):
        if '"status": "stopped"' in call(CRUN, *root, "state", cid).stdout:
            break
        time.sleep(0.1)
    deleted = call(WRAPPER, *root, "delete", cid)
    assert deleted.returncode == 0, deleted.stderr
    profile = env.profile(name)
    assert [r["container_id"] for r in profile["runs"]] == [cid]
    assert profile["complete"] and profile["runs"][0]["cutover"] == "seccomp"
    assert {"execve", "write", "getdents64"} <= set(profile["syscalls"])
    watching = [json.loads(line) for line in env.log_file.read_text().splitlines() if '"watching"' in line]
    assert [e["via"] for e in watching if e["container_id"] == cid] == ["relay"]
