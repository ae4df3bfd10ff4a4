"""Profiles that hold up in production, with real runc and real eBPF: the kernel's own asynchronous
syscalls (restart_syscall) are in every profile."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from integration.env import Env, rootfs_with_program, write_config
from integration.test_wrapper_runc import WRAPPER, _stop_tracer_of, call

# The operator left restart_syscall out of seccomp.always_allow: it stays allowed all the same.
TRIMMED_FLOOR = ["exit", "exit_group", "rt_sigreturn"]


@pytest.fixture(scope="module")
def sleep_rootfs(env: Env) -> Path:
    return rootfs_with_program(env.rootfs, env.root / "rootfs-stopped-sleep", "stopped_sleep", "stopped-sleep")


def _bundle(env: Env, rootfs: Path, args: list[str], mode: str, name: str) -> Path:
    path = env.bundle(args, learn=False, seccomp=None, annotations={"io.syscage.mode": mode,
                                                                    "io.syscage.profile": name})
    spec = json.loads((path / "config.json").read_text())
    spec["root"]["path"] = str(rootfs)
    (path / "config.json").write_text(json.dumps(spec))
    return path


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _wait_for(pid: int, state: str) -> None:
    deadline = time.monotonic() + 30
    while _state(pid) != state or _comm(pid) != "stopped-sleep":
        assert time.monotonic() < deadline, f"process {pid} never reached state {state}"
        time.sleep(0.05)


def test_a_sleep_stopped_and_continued_under_enforce_keeps_working(env: Env, sleep_rootfs: Path) -> None:
    root = env.root / env.name("restart")
    root.mkdir()
    config = root / "config.toml"
    # A tracer of its own (it merges with this floor); its BPF compile can take long on a loaded machine.
    write_config(config, root, seccomp={"always_allow": TRIMMED_FLOOR}, tracer={"start_timeout": 300})
    environment = {**os.environ, "SYSCAGE_CONFIG": str(config)}
    runc_root = ["--root", str(env.runc_root)]
    name = env.name("restart")
    try:
        learning = _bundle(env, sleep_rootfs, ["stopped-sleep", "1"], "learn", name)
        learned = subprocess.run([WRAPPER, *runc_root, "run", "-b", str(learning), env.name("c")], capture_output=True,
                                 text=True, stdin=subprocess.DEVNULL, env=environment, timeout=330, check=False)
        assert learned.returncode == 0 and learned.stdout == "slept\n", learned.stderr
        profile = json.loads((root / "store" / "profiles" / name / "profile.json").read_text())
        assert profile["complete"], profile["incomplete_reasons"]
        assert profile["syscalls"]["restart_syscall"]["sources"] == ["kernel"]  # never seen, never in the floor
        cid = env.name("c")
        enforced = _bundle(env, sleep_rootfs, ["stopped-sleep", "4"], "enforce", name)
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            running = subprocess.Popen([WRAPPER, *runc_root, "run", "-b", str(enforced), cid], stdout=out, stderr=err,
                                       stdin=subprocess.DEVNULL, env=environment)
            deadline = time.monotonic() + 30
            while True:
                state = call("runc", *runc_root, "state", cid)
                if state.returncode == 0 and json.loads(state.stdout)["pid"]:
                    pid = json.loads(state.stdout)["pid"]
                    break
                assert time.monotonic() < deadline and running.poll() is None, "the container never started"
                time.sleep(0.05)
            _wait_for(pid, "S")  # exec'd, and in its nanosleep
            os.kill(pid, signal.SIGSTOP)
            _wait_for(pid, "T")
            os.kill(pid, signal.SIGCONT)
            assert running.wait(timeout=60) == 0
            out.seek(0)
            err.seek(0)
            assert out.read() == "slept\n", err.read()
        allowed = json.loads((enforced / "config.json").read_text())["linux"]["seccomp"]["syscalls"][0]["names"]
        assert "restart_syscall" in allowed
    finally:
        _stop_tracer_of(root / "run")


CHANCE_WORKLOAD = ["sh", "-c",
                   'echo hi > /dev/null; [ "$MAKE_DIR" = 1 ] && mkdir /tmp/d-$$; cat /proc/self/status >/dev/null']


def _syscage(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(WRAPPER).parent / "syscage"), *args], capture_output=True, text=True, check=False,
                          env={**os.environ, "SYSCAGE_CONFIG": str(config)}, timeout=60)


def test_convergence_flips_as_the_rule_says_and_flags_a_syscall_seen_in_one_run(env: Env) -> None:
    """The same workload learned 1, then 5 times; only the first run takes its mkdir branch (MAKE_DIR=1)."""
    root = env.root / env.name("converge")
    root.mkdir()
    config = root / "config.toml"  # the session's store, with a rule of 3 runs
    write_config(config, env.root, convergence={"min_runs": 3, "min_minutes": 0, "chance_share": 0.5})
    refuse = root / "refuse.toml"
    write_config(refuse, env.root, convergence={"min_runs": 3, "on_enforce": "refuse"},
                 enforce={"on_missing_profile": "allow"})  # refusing never falls back to running unconfined
    name = env.name("converge")
    states = []
    for i in range(5):
        path = env.bundle(CHANCE_WORKLOAD, profile=name)
        spec = json.loads((path / "config.json").read_text())
        spec["process"]["env"].append(f"MAKE_DIR={int(i == 0)}")
        (path / "config.json").write_text(json.dumps(spec))
        result = env.run(path)
        assert result.returncode in (0, 1), result.stderr  # sh ends with the last test's status
        (row,) = [r for r in json.loads(_syscage(config, "list", "--json").stdout) if r["name"] == name]
        profile = env.profile(name)
        assert profile["runs_total"] == i + 1 and profile["complete"]
        # The rule, from the record: converged exactly when 3 runs have passed since anything new.
        assert row["converged"] == (profile["convergence"]["runs_since_new"] >= 3)
        states.append((row["converged"], row["runs_since_new"], row["chance_dependent"]))
        if i in (0, 4):  # convergence.on_enforce = refuse: the create fails in one line until it has converged
            enforced = env.bundle(["sh", "-c", "echo hi"], learn=False, seccomp=None,
                                  annotations={"io.syscage.mode": "enforce", "io.syscage.profile": name})
            result = call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(enforced), env.name("c"),
                          env={**os.environ, "SYSCAGE_CONFIG": str(refuse)})
            if row["converged"]:
                assert result.returncode == 0 and result.stdout == "hi\n", result.stderr
            else:
                assert result.returncode != 0 and result.stdout == ""
                (line,) = result.stderr.strip().splitlines()
                assert f"profile {name} has not converged: 0 run(s) since anything new" in line
    assert "mkdir" in env.profile(name)["syscalls"] and env.profile(name)["syscalls"]["mkdir"]["seen_runs"] == 1
    assert states[0] == (False, 0, [])  # one run: not converged, nothing to compare
    assert states[-1][0] and "mkdir" in states[-1][2], states  # after 5 (4 with nothing new): converged, flagged
    assert [s[0] for s in states] == [False, False, False, True, True], states
    shown = _syscage(config, "show", name)
    assert "learning: converged (4 run(s)" in shown.stdout
    assert "mkdir (1/5)" in shown.stdout
    assert [ln.split()[0] for ln in shown.stdout.splitlines() if ln.endswith("chance-dependent")] == \
        states[-1][2]
