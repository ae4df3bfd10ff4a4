"""Checkpoints, for real: a busybox httpd learning through containerd is in its profile while it runs, the
profile grows as the server does more, and its final record leaves one run (no duplicate of the checkpoint)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

from integration.containerd import Containerd
from integration.env import VENV_BIN, Env

WRAPPER = str(VENV_BIN / "syscage-runtime")
# httpd serves in the background; the client's request comes when the test says /go, the end at /stop.
SERVER = ("echo hello > /tmp/index.html; httpd -p 127.0.0.1:8080 -h /tmp; touch /up; "
          "while [ ! -e /go ]; do sleep 0.1; done; wget -q -O /tmp/got http://127.0.0.1:8080/index.html; touch /done; "
          "while [ ! -e /stop ]; do sleep 0.1; done; killall httpd; echo served")


def _snapshot(env: Env, name: str) -> subprocess.CompletedProcess[str]:
    environ = {"SYSCAGE_CONFIG": str(env.config_path), "PATH": "/usr/bin:/bin"}
    return subprocess.run([str(VENV_BIN / "syscage"), "snapshot", name], capture_output=True, text=True,
                          timeout=120, check=False, env=environ)


def _wait_for(path: Path, what: str) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.1)


def test_a_learning_server_is_checkpointed_while_it_runs(env: Env, containerd: Containerd) -> None:
    name, cid = env.name("server"), env.name("srv")
    rootfs = env.root / env.name("srv-rootfs")
    shutil.copytree(env.rootfs, rootfs, symlinks=True)
    result: dict[str, subprocess.CompletedProcess[str]] = {}
    runner = threading.Thread(target=lambda: result.setdefault("run", containerd.run(
        rootfs, cid, ["sh", "-c", SERVER], {"io.syscage.mode": "learn", "io.syscage.profile": name},
        runc_binary=WRAPPER)))
    runner.start()
    try:
        _wait_for(rootfs / "up", "the server's start")
        profile_path = env.store / "profiles" / name / "profile.json"
        assert not profile_path.exists()  # nothing before the first checkpoint: a first run only has its pending
        done = _snapshot(env, name)
        assert done.returncode == 0 and "checkpointed 1 learning container" in done.stdout, done
        first = json.loads(profile_path.read_text())
        (run,) = first["runs"]
        assert run["in_progress"] and run["container_id"] == cid
        assert {"bind", "listen"} <= set(first["syscalls"])  # httpd's, seen while it runs
        assert "connect" not in first["syscalls"]

        (rootfs / "go").touch()
        _wait_for(rootfs / "done", "the client's request")
        done = _snapshot(env, name)
        assert done.returncode == 0, done
        second = json.loads(profile_path.read_text())
        assert len(second["runs"]) == 1 and second["runs"][0]["in_progress"]
        assert set(first["syscalls"]) < set(second["syscalls"]) and "connect" in second["syscalls"]
    finally:
        (rootfs / "stop").touch()
        runner.join(timeout=120)
    assert result["run"].returncode == 0 and "served" in result["run"].stdout, result["run"]
    final = json.loads(profile_path.read_text())
    (run,) = final["runs"]  # the final record replaced the checkpoint
    assert run["container_id"] == cid and not run.get("in_progress") and run["complete"], run
    assert set(second["syscalls"]) <= set(final["syscalls"])
    assert not [n for n, e in final["syscalls"].items() if "checkpoint" in e["sources"]]
    assert final["syscalls"]["connect"]["runs"] == 1 and final["runs_total"] == 1


def test_a_tracer_crash_loses_at_most_one_interval_and_says_so(env: Env) -> None:
    """Checkpoints every tracer.checkpoint_interval: the tracer SIGKILLed after one, the run is settled from it
    (incomplete, saying what is missing), with what the checkpoint saw."""
    from integration.private import WRAPPER as PRIVATE_WRAPPER
    from integration.private import make_world, wait_gone

    world = make_world(env, tracer={"idle_timeout": 600, "checkpoint_interval": 1})
    daemon = world.start_containerd()
    try:
        name, cid = env.name("crash"), env.name("c")
        rootfs = world.rootfs()
        workload = "mkdir /tmp/made; touch /ready; while [ ! -e /stop ]; do sleep 0.1; done; echo end"
        result: dict[str, subprocess.CompletedProcess[str]] = {}
        runner = threading.Thread(target=lambda: result.setdefault("run", daemon.run(
            rootfs, cid, ["sh", "-c", workload], {"io.syscage.mode": "learn", "io.syscage.profile": name},
            runc_binary=PRIVATE_WRAPPER)))
        runner.start()
        try:
            _wait_for(rootfs / "ready", "the workload's start")
            path = world.store / "profiles" / name / "profile.json"
            deadline = time.monotonic() + 120
            while not (path.exists() and {"mkdir", "mkdirat"} & set(json.loads(path.read_text())["syscalls"])):
                assert time.monotonic() < deadline, "no checkpoint came"
                time.sleep(0.2)
            tracer = world.tracer_pid()
            assert tracer is not None
            os.kill(tracer, signal.SIGKILL)
            wait_gone(tracer)
        finally:
            (rootfs / "stop").touch()
            runner.join(timeout=120)
        assert result["run"].returncode == 0 and result["run"].stdout == "end\n", result["run"]
        profile = world.profile(name)
        (run,) = profile["runs"]
        assert not run.get("in_progress") and not run["complete"] and not profile["complete"]
        assert "at most tracer.checkpoint_interval" in " ".join(run["problems"]), run["problems"]
        made = ({"mkdir", "mkdirat"} & set(profile["syscalls"])).pop()
        assert profile["syscalls"][made]["sources"] == ["observed"]  # kept from the checkpoint, counted once
    finally:
        daemon.stop()
        world.stop_tracer()
