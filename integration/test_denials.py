"""`syscage denials` through containerd, for real: a profile learned from `ls /`, then `mkdir /tmp/x` under
complain and under enforce, the kernel's records read back and tied to the container and profile, and
`--add` closing the loop so the enforce run succeeds.

runc 1.1.5 refuses seccomp flags, so its errno denials leave no record: `denials` must say so for that very
container. crun passes SECCOMP_FILTER_FLAG_LOG on: its errno denials are listed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from integration.env import VENV_BIN, Env, write_config
from integration.private import WRAPPER, World, containerd_world
from integration.test_crun import _crun_ready_for_hybrid_cgroups

MKDIR = {"mkdir", "mkdirat"}
CRUN = shutil.which("crun") or "/usr/bin/crun"


def syscage(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "syscage"), *args], capture_output=True, text=True, timeout=120,
                          env={**world.environ(), "SYSCAGE_PLAIN": "1"}, stdin=subprocess.DEVNULL, check=False)


def denials(world: World, name: str, *extra: str) -> dict[str, Any]:
    done = syscage(world, "denials", name, "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def mode(kind: str, profile: str) -> dict[str, str]:
    return {"io.syscage.mode": kind, "io.syscage.profile": profile}


def learn_ls(world: World, name: str) -> None:
    learned = world.ctr_learn(world.env.name("c"), ["ls", "/"], name)
    assert learned.returncode == 0, learned.stderr
    profile = world.profile(name)
    assert profile["complete"], profile["incomplete_reasons"]  # (on a machine too busy to start the tracer)
    assert not set(profile["syscalls"]) & MKDIR


def busy_machine_config(world: World, **extra: dict[str, Any]) -> None:
    """Other suites share this 2-core machine: give a cold tracer time to compile under load (less than ctr's
    120 s), and have it running before the first learning container."""
    write_config(world.config, world.root, tracer={"idle_timeout": 600, "start_timeout": 100},
                 runtime={"hook_timeout": 110, **extra.pop("runtime", {})}, **extra)
    start = "from syscage.config import load_config; from syscage.hooks.client import start_tracer_in_background " \
        "as start; start(load_config())"
    subprocess.run([str(VENV_BIN / "python"), "-c", start], env=world.environ(), check=True, timeout=120)
    deadline = time.monotonic() + 300
    while syscage(world, "tracer", "status").returncode != 0:
        assert time.monotonic() < deadline, "the tracer did not start within 300 s"
        time.sleep(1)


@contextmanager
def learned_world(env: Env, label: str, **config: dict[str, Any]) -> Iterator[tuple[World, str]]:
    """A private containerd world set up for a busy machine, with a profile learned from `ls /`."""
    with containerd_world(env) as world:
        busy_machine_config(world, **config)
        name = env.name(label)
        learn_ls(world, name)
        yield world, name


def mkdir_under(world: World, kind: str, profile: str) -> tuple[str, Path, subprocess.CompletedProcess[str]]:
    """A new container running `mkdir /tmp/x` under mode `kind` with `profile`, through containerd and the
    wrapper: its id, rootfs and result."""
    assert world.daemon is not None
    cid, fs = world.env.name(kind[:3]), world.rootfs()
    return cid, fs, world.daemon.run(fs, cid, ["mkdir", "/tmp/x"], mode(kind, profile), runc_binary=WRAPPER)


def assert_denied(fs: Path, done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode != 0 and "Operation not permitted" in done.stdout + done.stderr
    assert not (fs / "tmp" / "x").exists()


def rows_for(report: dict[str, Any], cid: str) -> list[dict[str, Any]]:
    return [r for r in report["denials"] if r["container_id"] == cid]


def wait_rows(world: World, name: str, cid: str) -> list[dict[str, Any]]:
    """The kernel logs the record when the syscall returns; the kernel log gets it a moment later."""
    for _ in range(50):
        rows = rows_for(denials(world, name), cid)
        if rows:
            return rows
        time.sleep(0.1)
    return []


def test_complain_and_enforce_denials_with_runc(env: Env) -> None:
    with learned_world(env, "den-runc") as (world, name):
        assert world.daemon is not None

        # complain: allowed and logged (SCMP_ACT_LOG), tied to the container and profile.
        cid, fs, done = mkdir_under(world, "complain", name)
        assert done.returncode == 0, done.stderr
        assert (fs / "tmp" / "x").is_dir()
        rows = wait_rows(world, name, cid)
        assert {r["syscall"] for r in rows} & MKDIR, rows
        assert all(r["profile"] == name and r["mode"] == "complain" and r["outcome"] == "logged" for r in rows)
        plain = syscage(world, "denials", name)
        assert cid in plain.stdout and "logged" in plain.stdout

        # enforce under runc 1.1.5: denied, and no record can exist: `denials` names the container and why.
        cid, fs, done = mkdir_under(world, "enforce", name + "-e")
        assert done.returncode != 0  # no such profile: refused (checks the refusal leaves no note behind)
        learn_ls(world, name + "-e")
        done = world.daemon.run(fs, cid, ["mkdir", "/tmp/x"], mode("enforce", name + "-e"), runc_binary=WRAPPER)
        assert_denied(fs, done)
        report = denials(world, name + "-e")
        assert not rows_for(report, cid)
        said = [n for n in report["notes"] if cid in n]
        assert said and "errno denials leave no kernel record" in said[0] and "refuses seccomp flags" in said[0], \
            report["notes"]
        spec_seen = [e for e in world.log() if e.get("container_id") == cid and "log_flag" in e]
        assert spec_seen and spec_seen[-1]["log_flag"] is False


def test_enforce_denials_and_add_with_crun(env: Env) -> None:
    _crun_ready_for_hybrid_cgroups()
    with learned_world(env, "den-crun", runtime={"path": CRUN}) as (world, name):
        assert world.daemon is not None

        cid, fs, done = mkdir_under(world, "enforce", name)
        assert_denied(fs, done)
        rows = wait_rows(world, name, cid)
        assert {r["syscall"] for r in rows} & MKDIR, rows
        assert all(r["profile"] == name and r["mode"] == "enforce" and r["outcome"] == "denied" for r in rows)
        assert all(r["via"] in ("init pid", "cgroup", "pid seen earlier") for r in rows)
        # the filter crun was given carried the flag
        notes = sorted((world.run_dir / "containers").glob("*.json"))
        assert any(json.loads(p.read_text()).get("log_flag") is True for p in notes if p.name != "pids.json")

        added = syscage(world, "denials", name, "--add")
        assert added.returncode == 0, added.stderr
        profile = world.profile(name)
        new = {s for s, e in profile["syscalls"].items() if e["sources"] == ["denials"]}
        assert new & MKDIR and new <= MKDIR | {"mkdir", "mkdirat"}, new
        assert profile["from_denials"][-1]["containers"] == [cid]
        show = syscage(world, "show", name)
        assert "denials" in show.stdout

        done = world.daemon.run(fs, env.name("enf"), ["mkdir", "/tmp/x"], mode("enforce", name), runc_binary=WRAPPER)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (fs / "tmp" / "x").is_dir()


def wait_reading_kmsg(pid: int) -> None:
    for _ in range(600):
        fds = Path(f"/proc/{pid}/fd")
        if any(os.readlink(fd) == "/dev/kmsg" for fd in fds.iterdir() if fd.is_symlink()):
            time.sleep(0.5)  # open, then at its end
            return
        time.sleep(0.1)
    raise AssertionError("syscage denials --follow never opened /dev/kmsg")


def test_follow_prints_a_denial_as_it_happens(env: Env) -> None:
    """--follow with a complain container: the line names the container, profile and syscall."""
    with learned_world(env, "den-follow") as (world, name):
        assert world.daemon is not None
        out = Path(world.root / "follow.out")
        with out.open("w") as sink:
            follower = subprocess.Popen([str(VENV_BIN / "syscage"), "denials", name, "--follow", "--json"],
                                        stdout=sink, stderr=subprocess.STDOUT, env={**world.environ()},
                                        stdin=subprocess.DEVNULL)
            try:
                wait_reading_kmsg(follower.pid)  # it reads from the end: the denial must come after
                cid, _, done = mkdir_under(world, "complain", name)
                assert done.returncode == 0, done.stderr
                lines: list[dict[str, Any]] = []
                for _ in range(100):
                    lines = [json.loads(x) for x in out.read_text().splitlines() if x.startswith("{")]
                    if any(x["syscall"] in MKDIR for x in lines):
                        break
                    time.sleep(0.1)
            finally:
                follower.terminate()
                follower.wait(timeout=10)
        hits = [x for x in lines if x["syscall"] in MKDIR]
        assert hits and hits[0]["container_id"] == cid and hits[0]["profile"] == name, out.read_text()
        assert os.path.exists(world.run_dir / "containers")
