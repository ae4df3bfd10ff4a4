"""No learning run is lost or handed to another container without the profile saying so: reused container
ids, failed creates, a tracer stopped or killed while containers learn, a full store. Real runc and eBPF."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from integration.env import VENV_BIN, Env, write_config
from integration.test_wrapper_runc import WRAPPER, _stop_tracer_of, _wait_stopped, call, learning_bundle
from syscage.config import load_config
from syscage.protocol import request

SYSCAGE = str(VENV_BIN / "syscage")


def pending_runs(store: Path, name: str) -> list[Path]:
    directory = store / "profiles" / name / "pending"
    return sorted(directory.iterdir()) if directory.exists() else []


def listed(name: str, environ: dict[str, str] | None = None) -> dict[str, Any]:
    rows = json.loads(call(SYSCAGE, "list", "--json", env=environ).stdout)
    (row,) = [r for r in rows if r["name"] == name]
    return row


def enforce(env: Env, name: str, args: list[str], environ: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    bundle = env.bundle(args, learn=False, seccomp=None,
                        annotations={"io.syscage.mode": "enforce", "io.syscage.profile": name})
    return call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(bundle), env.name("c"), env=environ)


def learn_with_create(env: Env, name: str, args: list[str], cid: str, environ: dict[str, str] | None = None,
                      wait: bool = True) -> None:
    root = ["--root", str(env.runc_root)]
    created = call(WRAPPER, *root, "create", "--bundle", str(learning_bundle(env, name, args)), cid, env=environ)
    assert created.returncode == 0, created.stderr
    assert call(WRAPPER, *root, "start", cid, env=environ).returncode == 0
    if wait:
        _wait_stopped(env, cid)


def wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"tracer {pid} did not exit"
        time.sleep(0.1)


def test_a_reused_id_learns_into_its_own_profile_only(env: Env) -> None:
    """Learn into reuse-a with `true`, delete it with plain runc (no record), then a new container with the
    same id learns into reuse-b: reuse-b gets its own syscalls, reuse-a its run (incomplete)."""
    cid, first, second = env.name("c"), env.name("reuse-a"), env.name("reuse-b")
    learn_with_create(env, first, ["true"], cid)
    assert call("runc", "--root", str(env.runc_root), "delete", cid).returncode == 0  # syscage never hears
    workload = ["sh", "-c", "sync; mkdir /tmp/d; uname"]
    learn_with_create(env, second, workload, cid)
    deleted = call(WRAPPER, "--root", str(env.runc_root), "delete", cid)
    assert deleted.returncode == 0, deleted.stderr
    b = env.profile(second)
    assert b["complete"], b["incomplete_reasons"]
    assert [r["container_id"] for r in b["runs"]] == [cid]
    assert {"sync", "mkdir", "uname"} <= set(b["syscalls"])
    a = env.profile(first)  # saved into its own profile as soon as the id came back
    assert not a["complete"] and [r["container_id"] for r in a["runs"]] == [cid]
    assert "another container now uses the id" in a["runs"][0]["problems"][0]
    assert "execve" in a["syscalls"]  # what was seen of it is kept
    assert pending_runs(env.store, first) == pending_runs(env.store, second) == []
    enforced = enforce(env, second, workload)
    assert enforced.returncode == 0 and enforced.stdout == "Linux\n", enforced.stderr


@pytest.mark.parametrize("prestart", ["relay", "syscage-hook"])
def test_a_failed_create_releases_its_watch_without_a_run(env: Env, prestart: str) -> None:
    """The runtime fails the create after the prestart (the relay, or the hook when no relay can be set up)
    had the container watched."""
    root = env.root / env.name("failed-create")
    config = env.config_path
    if prestart == "syscage-hook":
        (root / "run").mkdir(parents=True)
        (root / "run" / "relay").write_text("a file where the relay directory should be")
        config = root / "config.toml"
        write_config(config, root)
    environ = {**os.environ, "SYSCAGE_CONFIG": str(config)}
    settings = load_config(config)
    name, cid = env.name("failed-create"), env.name("c")
    bundle = learning_bundle(env, name, ["true"])
    spec = json.loads((bundle / "config.json").read_text())
    spec["hooks"] = {"createRuntime": [{"path": "/bin/false", "args": ["false"]}]}  # runs after prestart
    (bundle / "config.json").write_text(json.dumps(spec))
    try:
        created = call(WRAPPER, "--root", str(env.runc_root), "create", "--bundle", str(bundle), cid, env=environ)
        assert created.returncode != 0
        prestarts = json.loads((bundle / "config.json").read_text())["hooks"]["prestart"]
        assert prestarts[0]["path"] == ("/bin/sh" if prestart == "relay" else str(settings.hook_path))
        logged = [json.loads(line) for line in settings.log_file.read_text().splitlines() if '"watching"' in line]
        assert [e for e in logged if e.get("container_id") == cid], "the prestart never had it watched"
        assert cid not in request(settings, {"op": "status"})["watching"]
        assert pending_runs(settings.store, name) == []
        assert not (settings.store / "profiles" / name / "profile.json").exists()  # no container, no run
    finally:
        if prestart == "syscage-hook":
            _stop_tracer_of(root / "run")


def test_tracer_stop_saves_the_runs_it_still_watches(env: Env) -> None:
    """A learning container deleted with plain runc, then `syscage tracer stop`: its run is saved, as
    incomplete, with what was seen; the profile does not stay complete without it."""
    name, cid = env.name("stopped"), env.name("c")
    assert call(WRAPPER, "--root", str(env.runc_root), "run", "-b",
                str(learning_bundle(env, name, ["true"])), env.name("c")).returncode == 0
    assert env.profile(name)["complete"]
    learn_with_create(env, name, ["sh", "-c", "mkdir /tmp/d"], cid)
    assert call("runc", "--root", str(env.runc_root), "delete", cid).returncode == 0
    pid = env.tracer_pid()
    assert pid is not None
    stopped = call(SYSCAGE, "tracer", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "stopped; 1 still-watched container run(s) saved as incomplete" in stopped.stdout
    profile = env.profile(name)  # saved before `tracer stop` returns
    assert not profile["complete"]
    run = profile["runs"][-1]
    assert run["container_id"] == cid and "tracer stopped" in run["problems"][-1]
    assert "mkdir" in profile["syscalls"]
    assert pending_runs(env.store, name) == []
    wait_gone(pid)
    refused = enforce(env, name, ["true"])
    assert refused.returncode != 0 and "incomplete" in refused.stderr


def test_a_killed_tracer_leaves_the_profile_incomplete(env: Env) -> None:
    """SIGKILL: nothing is saved by the tracer itself; its pending run makes the profile incomplete at once
    (enforce refuses, list and show say so), and the next tracer saves it as an incomplete run."""
    name, cid = env.name("killed"), env.name("c")
    assert call(WRAPPER, "--root", str(env.runc_root), "run", "-b",
                str(learning_bundle(env, name, ["true"])), env.name("c")).returncode == 0
    assert enforce(env, name, ["true"]).returncode == 0  # complete, enforceable
    learn_with_create(env, name, ["sh", "-c", "sleep 60"], cid, wait=False)
    assert listed(name) | {"learning_now": 1} == listed(name)  # learning now is no loss
    assert enforce(env, name, ["true"]).returncode == 0
    pid = env.tracer_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    row = listed(name)
    assert row["complete"] is False and row["lost_runs"] == 1
    shown = call(SYSCAGE, "show", name).stdout
    assert "INCOMPLETE" in shown and f"run of {cid}" in shown and "stopped or crashed" in shown
    refused = enforce(env, name, ["true"])
    assert refused.returncode != 0 and "lost" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    # The next tracer (started by the next learner) saves the lost run into the profile.
    assert call(WRAPPER, "--root", str(env.runc_root), "run", "-b",
                str(learning_bundle(env, env.name("next"), ["true"])), env.name("c")).returncode == 0
    assert pending_runs(env.store, name) == []
    profile = env.profile(name)
    assert not profile["complete"]
    assert [r["container_id"] for r in profile["runs"]][-1] == cid
    assert "stopped or crashed" in profile["runs"][-1]["problems"][0]
    assert call(WRAPPER, "--root", str(env.runc_root), "delete", "--force", cid).returncode == 0


@pytest.fixture
def small_store(env: Env) -> Iterator[tuple[Path, dict[str, str]]]:
    """A private config whose store is a 1 MiB tmpfs; its own tracer."""
    root = env.root / env.name("full")
    (root / "store").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(root / "store")], check=True)
    config = root / "config.toml"
    write_config(config, root)
    try:
        yield root, {**os.environ, "SYSCAGE_CONFIG": str(config)}
    finally:
        _stop_tracer_of(root / "run")
        with contextlib.suppress(FileNotFoundError, ValueError):
            wait_gone(int((root / "run" / "tracer.pid").read_text()))
        subprocess.run(["umount", str(root / "store")], check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"x" * size):
                    pass
    finally:
        os.close(fd)
    return filler


def test_a_full_store_leaves_the_profile_incomplete(env: Env, small_store: tuple[Path, dict[str, str]]) -> None:
    root, environ = small_store
    store = root / "store"
    name, cid = env.name("full"), env.name("c")
    assert call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(learning_bundle(env, name, ["true"])),
                env.name("c"), env=environ).returncode == 0
    learn_with_create(env, name, ["sh", "-c", "mkdir /tmp/d"], cid, environ)
    filler = fill(store)
    deleted = call(WRAPPER, "--root", str(env.runc_root), "delete", cid, env=environ)
    assert deleted.returncode == 0  # the runtime's code: the container is deleted
    errors = [line for line in deleted.stderr.splitlines() if line.startswith("syscage: error")]
    assert len(errors) == 1 and "No space left on device" in errors[0] and name in errors[0], deleted.stderr
    assert call("runc", "--root", str(env.runc_root), "state", cid).returncode != 0
    row = listed(name, environ)
    assert row["complete"] is False and row["lost_runs"] == 1
    assert "recording its run failed" in call(SYSCAGE, "show", name, env=environ).stdout
    refused = enforce(env, name, ["true"], environ)
    assert refused.returncode != 0 and "lost" in refused.stderr
    # Space again, and a fresh tracer: the failed run becomes an incomplete run of the profile.
    filler.unlink()
    assert call(SYSCAGE, "tracer", "stop", env=environ).returncode == 0
    with contextlib.suppress(FileNotFoundError, ValueError):
        wait_gone(int((root / "run" / "tracer.pid").read_text()))
    assert call(WRAPPER, "--root", str(env.runc_root), "run", "-b",
                str(learning_bundle(env, env.name("after"), ["true"])), env.name("c"), env=environ).returncode == 0
    assert pending_runs(store, name) == []
    profile = json.loads((store / "profiles" / name / "profile.json").read_text())
    assert not profile["complete"] and profile["runs"][-1]["container_id"] == cid
    assert "recording its run failed" in profile["runs"][-1]["problems"][0]


def test_one_namespace_cannot_take_every_tracer_slot(env: Env) -> None:
    """tracer.max_containers_per_namespace = 1: a second learner of one namespace is refused (counted; it runs
    untraced and its run is recorded incomplete), while another namespace still learns."""
    root = env.root / env.name("share")
    root.mkdir()
    config = root / "config.toml"
    write_config(config, root, tracer={"max_containers_per_namespace": 1, "idle_timeout": 600})
    environ = {**os.environ, "SYSCAGE_CONFIG": str(config)}
    runc = ["--root", str(env.runc_root)]
    cids = {key: env.name("c") for key in ("a1", "a2", "b1")}

    def create(key: str, namespace: str) -> subprocess.CompletedProcess[str]:
        profile = f"k8s.{namespace}.{key}-{os.getpid()}"
        bundle = env.bundle(["sh", "-c", "sleep 30"], learn=False, seccomp=None, annotations={
            "io.syscage.mode": "learn", "io.syscage.profile": profile,
            "io.kubernetes.cri.sandbox-namespace": namespace})
        return call(WRAPPER, *runc, "create", "--bundle", str(bundle), cids[key], env=environ)

    try:
        assert create("a1", "team-a").returncode == 0
        second = create("a2", "team-a")
        assert second.returncode == 0 and "runs untraced" in second.stderr
        assert "tracer.max_containers_per_namespace" in second.stderr
        assert create("b1", "team-b").returncode == 0
        status = request(load_config(config), {"op": "status"})
        assert sorted(status["watching"]) == sorted([cids["a1"], cids["b1"]])
        assert status["refused_by_namespace"] == {"team-a": 1}
        for cid in cids.values():
            assert call(WRAPPER, *runc, "delete", "--force", cid, env=environ).returncode == 0
        refused = json.loads((root / "store" / "profiles" / f"k8s.team-a.a2-{os.getpid()}" / "profile.json")
                             .read_text())
        assert not refused["complete"]
        learned = json.loads((root / "store" / "profiles" / f"k8s.team-b.b1-{os.getpid()}" / "profile.json")
                             .read_text())
        assert learned["runs"][0]["container_id"] == cids["b1"] and learned["syscalls"]  # traced
    finally:
        for cid in cids.values():
            call("runc", *runc, "delete", "--force", cid)
        _stop_tracer_of(root / "run")
