"""diff, check and lint on profiles from real learn runs, against Docker's default seccomp profile."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from integration.env import VENV_BIN, Env

DOCKER_DEFAULT = Path(__file__).parent.parent / "tests" / "fixtures" / "docker-default-seccomp.json"


def syscage(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "syscage"), *args], capture_output=True, text=True, timeout=120,
                          env=os.environ.copy(), stdin=subprocess.DEVNULL)


def _learn(env: Env, script: str) -> tuple[str, str]:
    name, cid = env.name("review"), env.name("c")
    result = env.run(env.bundle(["/bin/sh", "-c", script], profile=name), cid)
    assert result.returncode == 0, result.stderr
    assert env.profile(name)["complete"]
    return name, cid


def test_diff_check_lint_on_learned_profiles(env: Env) -> None:
    plain, _ = _learn(env, "echo hi")
    # pivot_root and swapoff fail (no such paths, no capability) but are made: Docker's default denies both,
    # and the Confine study ties pivot_root to kernel CVEs.
    risky, risky_cid = _learn(env, "pivot_root /nope /nope; swapoff /nope; true")
    profile = env.profile(risky)
    assert {"pivot_root", "swapoff"} <= set(profile["syscalls"])

    ok = syscage("check", plain, "--against", str(DOCKER_DEFAULT))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith(f"ok: profile {plain} allows nothing")

    fail = syscage("check", risky, "--against", str(DOCKER_DEFAULT), "--json")
    assert fail.returncode == 1, fail.stdout + fail.stderr
    report = json.loads(fail.stdout)
    assert report["not_allowed"] == ["pivot_root", "swapoff"] and report["ok"] is False

    diff = syscage("diff", plain, risky, "--json")
    assert diff.returncode == 1
    only_b = {e["syscall"] for e in json.loads(diff.stdout)["only_b"]}
    assert {"pivot_root", "swapoff"} <= only_b
    assert not json.loads(diff.stdout)["only_a"]

    # A profile against its own exported seccomp.json: the same policy.
    same = syscage("diff", risky, str(env.store / "profiles" / risky / "seccomp.json"))
    assert same.returncode == 0, same.stdout

    lint = syscage("lint", risky, "--json")
    assert lint.returncode == 1
    found = {(f["syscall"], f["rule"]): f for f in json.loads(lint.stdout)["findings"]}
    assert ("pivot_root", "kernel-cve") in found and ("pivot_root", "docker-default-denies") in found
    assert ("swapoff", "docker-default-denies") in found
    assert found[("pivot_root", "kernel-cve")]["first"]["container_id"] == risky_cid
    text = syscage("lint", risky)
    assert text.returncode == 1 and f"first needed by the run of {risky_cid}" in text.stdout

    bad = syscage("check", risky, "--against", "/nonexistent/seccomp.json")
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1 and "Traceback" not in bad.stderr


def test_rm_and_learn_again(env: Env) -> None:
    name, _ = _learn(env, "echo one")
    refused = syscage("rm", name)  # stdin is not a terminal
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert (env.store / "profiles" / name / "profile.json").exists()
    removed = syscage("rm", name, "--yes")
    assert removed.returncode == 0, removed.stderr
    assert not (env.store / "profiles" / name).exists()
    assert name not in syscage("list", "--json").stdout
    cid = env.name("c")
    assert env.run(env.bundle(["/bin/sh", "-c", "echo two"], profile=name), cid).returncode == 0
    assert [r["container_id"] for r in env.profile(name)["runs"]] == [cid]
    since = syscage("show", name, "--since", "1h", "--json")
    assert since.returncode == 0 and [r["container_id"] for r in json.loads(since.stdout)["runs"]] == [cid]
    assert syscage("prune", name, "--unused-for", "1d", "--json").returncode == 0  # nothing that old
    assert json.loads(syscage("prune", name, "--unused-for", "1d", "--json").stdout)["pruned"] == []
