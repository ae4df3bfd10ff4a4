"""Learn mode end to end with plain runc and hand-written hooks: what the profile really contains."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from integration.env import HOOK, Env, analysed, write_config
from syscage.config import load_config
from syscage.hooks.daemon.observe import runtime_base
from syscage.protocol import TracerUnavailable, request

WORKLOAD = ["sh", "-c", "echo hi; ls /; cat /etc/hostname"]
RUNTIME_SETUP = {"pivot_root", "mount", "sethostname", "umount2"}


@pytest.mark.parametrize("seccomp", ["allow-all", None], ids=["cutover-at-filter-load", "no-seccomp-section"])
def test_learned_profile_has_workload_and_not_runtime_setup(env: Env, seccomp: str | None) -> None:
    profile_name = env.name("basic")
    result = env.run(env.bundle(WORKLOAD, profile=profile_name, seccomp=seccomp))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("hi\n") and "syscage-demo" in result.stdout

    profile = env.profile(profile_name)
    learned = set(profile["syscalls"])
    assert {"execve", "write", "getdents64", "openat"} <= learned
    assert not learned & RUNTIME_SETUP, learned & RUNTIME_SETUP
    run = profile["runs"][0]
    assert run["cutover"] == ("seccomp" if seccomp else "exec")
    if seccomp:
        assert profile["complete"], profile["incomplete_reasons"]
        # Only a Go runtime's asynchronous syscalls (and the always-allowed floor) are added beyond what was observed.
        added = {n for n, e in profile["syscalls"].items() if e["sources"] == ["runtime-base"]}
        assert added <= set(runtime_base("runc")["asynchronous"])  # type: ignore[index]
        assert {s for e in profile["syscalls"].values() for s in e["sources"]} <= {"observed", "runtime-base", "floor",
                                                                               "kernel"}
    else:
        # Without a filter load to observe, runc's own post-load syscalls come from the measured base set.
        assert any("runtime-base" in e["sources"] for e in profile["syscalls"].values())
    seccomp_json = env.seccomp(profile_name)
    assert seccomp_json["defaultAction"] == "SCMP_ACT_ERRNO"
    # Every learned syscall is allowed: unconditionally, or for the argument values learned (syscage.arguments).
    allowed = {n for r in seccomp_json["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}
    assert allowed == learned
    # The hook's watch named the bundle: what the run exec'd (sh, busybox) was analysed with no operator step,
    # also when the tracer cut over at the exec it could not see.
    static = analysed(env, profile_name, 1)
    assert static["programs"] == ["/bin/busybox"] and not static["unresolved_total"], static


def test_host_and_other_containers_do_not_leak_into_profile(env: Env) -> None:
    watched, neighbour = env.name("iso-a"), env.name("iso-b")
    slow = ["sh", "-c", "echo hi; ls /; cat /etc/hostname; sleep 3"]
    learner = threading.Thread(target=lambda: env.run(env.bundle(slow, profile=watched)))
    learner.start()
    time.sleep(1.5)  # the learner is in its sleep now
    # A second container, learning another profile, and an unwatched one both make syscalls A never makes.
    noisy = ["sh", "-c", "sync; mkdir /tmp/x; mknod /tmp/p p; echo done"]
    other = env.run(env.bundle(noisy, profile=neighbour))
    unwatched = env.run(env.bundle(noisy, learn=False))
    # And the host itself.
    os.sync()
    host_dir = env.root / env.name("hostdir")
    os.mkdir(host_dir)
    os.mkfifo(host_dir / "fifo")
    learner.join(timeout=60)

    assert other.returncode == 0 and unwatched.returncode == 0, (other.stderr, unwatched.stderr)
    leaked = {"sync", "mkdirat", "mknodat", "mkdir", "mknod"}
    assert not set(env.profile(watched)["syscalls"]) & leaked
    # The neighbour learned its own syscalls: isolation works both ways, not by recording nothing.
    theirs = set(env.profile(neighbour)["syscalls"])
    assert "sync" in theirs and theirs & {"mkdir", "mkdirat"} and theirs & {"mknod", "mknodat"}, theirs


def test_second_run_merges_into_profile(env: Env) -> None:
    name = env.name("union")
    assert env.run(env.bundle(WORKLOAD, profile=name)).returncode == 0
    first = set(env.profile(name)["syscalls"])
    assert not first & {"mkdir", "mkdirat"}
    assert env.run(env.bundle(["mkdir", "/tmp/newdir"], profile=name)).returncode == 0
    profile = env.profile(name)
    now = set(profile["syscalls"])
    assert first < now and now & {"mkdir", "mkdirat"}
    assert len(profile["runs"]) == 2
    assert profile["syscalls"]["execve"]["runs"] == 2
    made_dir = (now & {"mkdir", "mkdirat"}).pop()
    assert profile["syscalls"][made_dir]["runs"] == 1


@pytest.mark.parametrize("learn_seccomp", ["allow-all", None],
                         ids=["learned-at-filter-load", "learned-without-seccomp"])
def test_rendered_seccomp_enforces_by_hand(env: Env, learn_seccomp: str | None) -> None:
    name = env.name("enforce")
    learned = env.run(env.bundle(WORKLOAD, profile=name, seccomp=learn_seccomp))
    assert learned.returncode == 0
    seccomp = env.seccomp(name)

    same = env.run(env.bundle(WORKLOAD, learn=False, seccomp=seccomp))
    assert same.returncode == 0, same.stderr
    assert same.stdout == learned.stdout

    denied = env.run(env.bundle(["mkdir", "/tmp/x"], learn=False, seccomp=seccomp))
    assert denied.returncode != 0
    assert "Operation not permitted" in denied.stderr  # EPERM, the configured errno


def test_runc_exec_process_is_recorded(env: Env) -> None:
    name, cid = env.name("exec"), env.name("c")
    bundle = env.bundle(["sleep", "4"], profile=name)
    # Detached: the container must not hold our pipes, or run would wait for it to finish.
    created = subprocess.run(["runc", "--root", str(env.runc_root), "run", "--detach", cid], cwd=bundle,
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             timeout=60, check=False)
    assert created.returncode == 0
    try:
        execd = env.runc("exec", cid, "sh", "-c", "sync; echo synced")
        assert execd.returncode == 0 and "synced" in execd.stdout, execd.stderr
    finally:
        deadline = time.monotonic() + 30
        while env.runc("state", cid).returncode == 0 and '"stopped"' not in env.runc("state", cid).stdout:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert env.runc("delete", cid).returncode == 0  # runs the poststop hook
    learned = set(env.profile(name)["syscalls"])
    assert "sync" in learned


def test_concurrent_learners_of_one_profile_lose_nothing(env: Env) -> None:
    name = env.name("concurrent")
    commands = [["mkdir", "/tmp/a"], ["sync"], ["mknod", "/tmp/p", "p"], ["sh", "-c", "echo x > /tmp/f; rm /tmp/f"]]
    bundles = [env.bundle(cmd, profile=name) for cmd in commands]
    results: list[subprocess.CompletedProcess[str]] = []
    threads = [threading.Thread(target=lambda b=b: results.append(env.run(b))) for b in bundles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
    profile = env.profile(name)
    assert len(profile["runs"]) == 4
    assert len({r["container_id"] for r in profile["runs"]}) == 4
    learned = set(profile["syscalls"])
    for alternatives in ({"mkdir", "mkdirat"}, {"sync"}, {"mknod", "mknodat"}, {"unlink", "unlinkat"}):
        assert learned & alternatives, (alternatives, learned)
    assert profile["syscalls"]["execve"]["runs"] == 4


def _hook(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(HOOK), *args], input=stdin, capture_output=True, check=False)


def _state(cid: str, annotations: dict[str, str], bundle: str = "/tmp") -> bytes:
    return json.dumps({"ociVersion": "1.0.2", "id": cid, "status": "created", "pid": os.getpid(),
                       "bundle": bundle, "annotations": annotations}).encode()


@pytest.mark.parametrize("hostile", ["../../etc", "/etc/passwd", "a\0b", "x" * 10_000, "UPPER", "..", ""])
def test_hook_refuses_hostile_profile_names(env: Env, hostile: str) -> None:
    before = sorted(p for p in env.root.rglob("*") if "bundles" not in p.parts)
    for phase in ("prestart", "poststop"):
        result = _hook(phase, stdin=_state("hostile", {"io.syscage.mode": "learn", "io.syscage.profile": hostile}))
        assert result.returncode != 0
        lines = result.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and "invalid profile name" in lines[0], lines
        assert "Traceback" not in result.stderr.decode()
    after = sorted(p for p in env.root.rglob("*") if "bundles" not in p.parts)
    assert [p for p in after if p not in before and p != env.log_file] == []


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["prestart"], b"{not json", "not valid JSON"),
    (["prestart"], b"", "no hook state"),
    (["prestart"], b"[1, 2]", "not a JSON object"),
    (["poststop"], b'{"id": "x"}', "bundle"),
    (["teardown"], b"{}", "unknown hook phase"),
    ([], b"{}", "unknown hook phase"),
])
def test_hook_refuses_malformed_input(env: Env, args: list[str], stdin: bytes, message: str) -> None:
    result = _hook(*args, stdin=stdin)
    assert result.returncode != 0
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_runc_refuses_container_with_hostile_annotation(env: Env) -> None:
    bundle = env.bundle(["true"], profile=None, annotations={"io.syscage.profile": "../../../etc"})
    result = env.run(bundle)
    assert result.returncode != 0
    assert "invalid profile name" in result.stderr
    assert not (env.store / "etc").exists() and not Path("/etc/profile.json").exists()


def test_tracer_killed_mid_run_marks_run_incomplete(env: Env) -> None:
    name = env.name("killed")
    bundle = env.bundle(["sh", "-c", "echo start; sleep 3; echo end"], profile=name)
    proc = subprocess.Popen(["runc", "--root", str(env.runc_root), "run", env.name("c")], cwd=bundle,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while env.tracer_pid() is None or not _watching():
        assert time.monotonic() < deadline, "container was never watched"
        time.sleep(0.1)
    # Once the workload prints, its prestart hook has its answer: the kill hits a tracer that is recording
    # (killed earlier, the hook would start a new tracer in time for the filter load, and rightly so).
    assert proc.stdout is not None and proc.stdout.readline() == "start\n"
    os.kill(env.tracer_pid(), signal.SIGKILL)  # type: ignore[arg-type]
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out == "end\n"
    profile = env.profile(name)
    assert profile["complete"] is False
    assert not profile["runs"][-1]["complete"]
    assert "tracer" in " ".join(profile["runs"][-1]["problems"])
    # runc swallows a poststop hook's stderr; the log keeps the hook's verdict.
    recorded = [json.loads(line) for line in env.log_file.read_text().splitlines() if '"run recorded"' in line]
    assert any(r["profile"] == name and r["complete"] is False for r in recorded)
    # The next learner starts a fresh tracer and is complete again.
    other = env.name("after-kill")
    assert env.run(env.bundle(["true"], profile=other)).returncode == 0
    assert env.profile(other)["complete"]


def _watching() -> bool:
    try:
        status = request(load_config(), {"op": "status"}, timeout=5)
    except TracerUnavailable:
        return False
    return bool(status.get("watching"))


def test_hooks_d_style_auto_phase(env: Env) -> None:
    """podman/CRI-O hooks.d runs one hook for both stages: `syscage-hook auto` infers the phase."""
    name = env.name("auto")
    bundle = env.bundle(["sh", "-c", "echo hi"], profile=name)
    spec = json.loads((bundle / "config.json").read_text())
    for phase in ("prestart", "poststop"):
        spec["hooks"][phase][0]["args"] = ["syscage-hook", "auto"]
    (bundle / "config.json").write_text(json.dumps(spec))
    assert env.run(bundle).returncode == 0
    profile = env.profile(name)
    assert profile["complete"] and "write" in profile["syscalls"]


@pytest.mark.parametrize("policy", ["run", "fail"])
def test_untraceable_container_follows_on_tracer_error(env: Env, policy: str) -> None:
    """A tracer that cannot start: by default the container runs and its run is recorded incomplete."""
    root = env.root / env.name("broken")
    root.mkdir()
    (root / "run").write_text("a file where the run directory should be")
    config = root / "config.toml"
    write_config(config, root, learn={"on_tracer_error": policy}, tracer={"start_timeout": 5})
    name = env.name("untraced")
    bundle = env.bundle(["sh", "-c", "echo ran"], profile=name)
    spec = json.loads((bundle / "config.json").read_text())
    for phase in ("prestart", "poststop"):
        spec["hooks"][phase][0]["env"] = [f"SYSCAGE_CONFIG={config}"]
    (bundle / "config.json").write_text(json.dumps(spec))
    cid = env.name("c")
    result = env.run(bundle, cid)
    profile_file = root / "store" / "profiles" / name / "profile.json"
    if policy == "fail":
        assert result.returncode != 0 and "ran" not in result.stdout
        # runc relays the hook's one line: which container, what failed, where to look.
        assert f"syscage: error: prestart for container {cid}: cannot start the tracer" in result.stderr
        assert f"check paths.run_dir ({root / 'run'})" in result.stderr
        assert "Traceback" not in result.stderr
        # runc runs the poststop hook of a container whose prestart failed: whatever it recorded is incomplete.
        assert not profile_file.exists() or json.loads(profile_file.read_text())["complete"] is False
        return
    assert result.returncode == 0 and result.stdout == "ran\n", result.stderr
    profile = json.loads(profile_file.read_text())
    assert profile["complete"] is False
    assert "tracer" in profile["runs"][0]["problems"][0]


def test_exec_from_a_non_leader_thread_keeps_recording(env: Env) -> None:
    """After a thread other than the leader execs, the process (with a new tid) is still recorded."""
    source = Path(__file__).parent / "programs" / "exec_from_thread.c"
    rootfs = env.root / env.name("rootfs-texec")
    shutil.copytree(env.rootfs, rootfs, symlinks=True)
    subprocess.run(["gcc", "-static", "-O2", "-pthread", "-o", str(rootfs / "bin" / "exec-from-thread"), str(source)],
                   check=True, capture_output=True)
    name = env.name("texec")
    bundle = env.bundle(["/bin/exec-from-thread"], profile=name)
    spec = json.loads((bundle / "config.json").read_text())
    spec["root"]["path"] = str(rootfs)
    (bundle / "config.json").write_text(json.dumps(spec))
    assert env.run(bundle).returncode == 0
    assert "sync" in env.profile(name)["syscalls"]  # made by busybox after the thread's exec
