"""Faults while learning: nothing is lost, and nothing is marked complete that is not.

* the tracer SIGKILLed while containerd's containers learn: the run is recorded incomplete, the next is whole;
* the profile writer killed between writing its temporary file and renaming it (a real process, killed by
  the kernel at that very syscall by a seccomp filter it loaded): readers see the old profile, intact, and
  the next write succeeds;
* containerd stopped and started again while containers learn: every run is recorded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

import pytest

from integration import bpf_objects
from integration.env import VENV_BIN, Env, analysed
from integration.private import NAMESPACE, WRAPPER, World, containerd_world, make_world, tracer_bpf, wait_gone
from syscage.config import load_config
from syscage.protocol import TracerUnavailable, request

SLOW = ["sh", "-c", "echo start; cat /proc/self/status >/dev/null; sleep 3; echo end"]


@pytest.fixture(scope="module")
def world(env: Env) -> Iterator[World]:
    """One world for the containerd tests (a tracer a test kills is started again by the next learner)."""
    with containerd_world(env) as w:
        yield w


def watching(world: World) -> list[str]:
    try:
        return list(request(load_config(world.config), {"op": "status"}, timeout=5)["watching"])
    except TracerUnavailable:
        return []


def wait_watching(world: World, count: int) -> None:
    deadline = time.monotonic() + 60
    while len(watching(world)) < count:
        assert time.monotonic() < deadline, f"{count} containers were never watched"
        time.sleep(0.1)


def test_containerd_restarted_while_containers_learn(world: World) -> None:
    """containerd goes away while three containers learn, and comes back after they exited: the shims kept
    them, and deleting them afterwards records every run."""
    assert world.daemon is not None
    name = world.env.name("restart")
    cids = [world.env.name("c") for _ in range(3)]
    for cid in cids:
        started = world.daemon.ctr("run", "-d", "--rootfs", "--env", "PATH=/bin:/usr/bin", "--runc-binary", WRAPPER,
                                   "--annotation", "io.syscage.mode=learn", "--annotation",
                                   f"io.syscage.profile={name}", str(world.rootfs()), cid, *SLOW)
        assert started.returncode == 0, started.stderr
    wait_watching(world, 3)
    world.daemon.process.terminate()
    world.daemon.process.wait(timeout=30)
    deadline = time.monotonic() + 60  # the containers finish while containerd is down
    while any(_running(cid) for cid in cids):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    daemon = world.start_containerd()
    tasks = daemon.ctr("tasks", "ls").stdout
    for cid in cids:
        assert cid in tasks
        deadline = time.monotonic() + 60
        while "STOPPED" not in next(line for line in daemon.ctr("tasks", "ls").stdout.splitlines() if cid in line):
            assert time.monotonic() < deadline, daemon.ctr("tasks", "ls").stdout
            time.sleep(0.5)
        deleted = daemon.ctr("tasks", "delete", cid)
        assert deleted.returncode == 0, deleted.stderr
        assert daemon.ctr("containers", "delete", cid).returncode == 0
    profile = world.profile(name)
    assert profile["runs_total"] == 3 and {r["container_id"] for r in profile["runs"]} == set(cids)
    # Recorded honestly: a whole run saw the workload to its end; an incomplete one says why.
    for run in profile["runs"]:
        assert run["complete"] or run["problems"], run
    assert profile["complete"] == all(r["complete"] for r in profile["runs"])
    print(f"\ncontainerd restarted under {len(cids)} learners: runs complete",
          [r["complete"] for r in profile["runs"]])
    if profile["complete"]:
        assert {"nanosleep", "clock_nanosleep"} & set(profile["syscalls"])
    assert watching(world) == []
    assert world.leftover_files() == []


def test_tracer_sigkilled_while_containerd_containers_learn(world: World) -> None:
    name, cid = world.env.name("killed"), world.env.name("c")
    # The kill comes once the workload runs, and the workload ends only after it. Waiting for the tracer's
    # status alone was not enough on a loaded machine: the tracer lists the container as soon as it takes the
    # watch, and killed before its reply reached the prestart relay, the relay rightly asked a new tracer, which
    # still watched the container from before its filter load, so the run was complete (correctly so).
    rootfs = world.rootfs()
    until_told = ["sh", "-c", "echo start; touch /running; cat /proc/self/status >/dev/null; "
                              "while [ ! -e /stop ]; do sleep 0.1; done; echo end"]
    results: list[subprocess.CompletedProcess[str]] = []
    learner = threading.Thread(target=lambda: results.append(world.ctr_learn(cid, until_told, name, rootfs=rootfs)))
    learner.start()
    deadline = time.monotonic() + 60
    while not (rootfs / "running").exists():
        assert time.monotonic() < deadline, "the workload never started"
        time.sleep(0.05)
    wait_watching(world, 1)
    tracer = world.tracer_pid()
    assert tracer is not None
    held = tracer_bpf(tracer)
    os.kill(tracer, signal.SIGKILL)
    (rootfs / "stop").touch()
    learner.join(timeout=120)
    (result,) = results
    assert result.returncode == 0, result.stderr
    assert result.stdout == "start\nend\n"  # the container itself never noticed
    profile = world.profile(name)
    assert profile["runs_total"] == 1 and not profile["complete"]
    (run,) = profile["runs"]
    assert not run["complete"] and "tracer" in " ".join(run["problems"])
    # A killed tracer's programs and maps go with it.
    wait_gone(tracer)
    assert bpf_objects.still_loaded(held) == set()
    assert bpf_objects.orphaned_tracer_objects() == set()
    # The next learner gets a fresh tracer and a whole run; nothing of the first one is left lying around.
    other = world.env.name("after-kill")
    assert world.ctr_learn(world.env.name("c"), ["sh", "-c", "echo hi"], other).returncode == 0
    assert world.profile(other)["complete"] and world.tracer_pid() not in (None, tracer)
    assert world.leftover_files() == []


def _running(cid: str) -> bool:
    """Whether the container's init still runs, from runc's own state (containerd is down; the runc shim
    keeps its containers under /run/containerd/runc/<namespace>)."""
    state = subprocess.run(["runc", "--root", f"/run/containerd/runc/{NAMESPACE}", "state", cid],
                           capture_output=True, text=True, check=False)
    assert state.returncode == 0, state.stderr  # runc knows it (stopped or running) until it is deleted
    return '"running"' in state.stdout


# -- the profile writer killed between write and rename ------------------------------------------------

WRITER = """
import errno, json, os, resource, sys, tempfile
from pathlib import Path
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
import pyseccomp
from syscage.profile import Observation
from syscage.store import ProfileStore

store_root, name, stage, scratch, syscalls = sys.argv[1:6]
obs = Observation(container_id="killed-writer", started="t", stopped="t", cutover="seccomp",
                  syscalls=json.loads(syscalls))
# The whole write path once, elsewhere: every lazy import and cache is warm before the filter is loaded.
ProfileStore(Path(scratch), errno.EPERM).record_run("warm-up", obs)
tempfile.gettempdir()
kill = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
if stage == "rename":  # dies at the rename of profile.json's temporary file
    for call in ("rename", "renameat", "renameat2"):
        kill.add_rule(pyseccomp.KILL_PROCESS, call)
else:  # dies after that rename, at the directory open for its fsync: seccomp.json is not written yet
    mask = os.O_ACCMODE | os.O_DIRECTORY | 0o20000000  # __O_TMPFILE: libseccomp's check uses O_TMPFILE
    kill.add_rule(pyseccomp.KILL_PROCESS, "openat", pyseccomp.Arg(2, pyseccomp.MASKED_EQ, mask, os.O_DIRECTORY))
kill.load()
ProfileStore(Path(store_root), errno.EPERM).record_run(name, obs)
print("not killed")
"""


MAKE_DIR = ["sh", "-c", "mkdir /tmp/made && echo made"]


def _kill_writer(env: Env, name: str, stage: str, syscalls: list[str]) -> None:
    result = subprocess.run([sys.executable, "-c", WRITER, str(env.store), name, stage,
                             str(env.root / env.name("scratch")), json.dumps(syscalls)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == -signal.SIGSYS, (result.returncode, result.stdout, result.stderr)


@pytest.mark.parametrize("stage", ["rename", "after-rename"])
def test_writer_killed_between_write_and_rename(env: Env, stage: str) -> None:
    name = env.name(f"writer-{stage}")
    directory = env.store / "profiles" / name
    learned = env.run(env.bundle(["sh", "-c", "echo hi"], profile=name))
    assert learned.returncode == 0, learned.stderr
    analysed(env, name, 1)  # the tracer's static analysis rewrites profile.json once, after the record
    before = {f: (directory / f).read_bytes() for f in ("profile.json", "seccomp.json")}
    # What the run being written saw: a real workload's syscalls, learned apart (mkdir, and a fork).
    reference = env.name("writer-ref")
    assert env.run(env.bundle(MAKE_DIR, profile=reference)).returncode == 0
    added = set(env.profile(reference)["syscalls"]) - set(json.loads(before["profile.json"])["syscalls"])
    assert added & {"mkdir", "mkdirat"}, added

    _kill_writer(env, name, stage, sorted(env.profile(reference)["syscalls"]))

    profile = env.profile(name)  # readable and valid, whichever point the writer died at
    temporary = sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))
    if stage == "rename":
        # It died holding its temporary file, complete and synced, but never renamed: readers see the old one.
        (left,) = temporary
        assert left.startswith(".profile.json.")
        assert added <= set(json.loads((directory / left).read_bytes())["syscalls"])
        assert {f: (directory / f).read_bytes() for f in before} == before
    else:
        # profile.json is the new one; seccomp.json the old, out of step with it.
        assert temporary == []
        assert added <= set(profile["syscalls"])
        assert (directory / "seccomp.json").read_bytes() == before["seccomp.json"]
    listed = subprocess.run([str(VENV_BIN / "syscage"), "list"], capture_output=True, text=True, check=False)
    assert listed.returncode == 0 and name in listed.stdout and ".tmp" not in listed.stdout
    shown = subprocess.run([str(VENV_BIN / "syscage"), "show", name], capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stderr

    # Enforce never trusts a seccomp.json out of step with its profile: it allows what profile.json allows.
    enforced = subprocess.run([WRAPPER, "--root", str(env.runc_root), "run", "--bundle",
                               str(env.bundle(MAKE_DIR, learn=False, seccomp=None,
                                              annotations={"io.syscage.mode": "enforce",
                                                           "io.syscage.profile": name})), env.name("c")],
                              capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    if stage == "rename":
        assert enforced.returncode != 0 and "made" not in enforced.stdout  # that run never made it in
    else:
        assert enforced.returncode == 0 and enforced.stdout == "made\n", enforced.stderr

    # The dead writer's lock went with it: the next run is recorded, and everything is in step again.
    again = env.run(env.bundle(["sh", "-c", "echo again"], profile=name))
    assert again.returncode == 0, again.stderr
    profile = env.profile(name)
    assert profile["runs_total"] == (2 if stage == "rename" else 3) and profile["complete"]
    rules = json.loads((directory / "seccomp.json").read_bytes())["syscalls"]  # some for learned arguments only
    assert {n for r in rules if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]} == set(profile["syscalls"])
    assert [p.name for p in directory.iterdir() if p.name.endswith(".tmp")] == temporary  # ignored, never read



# -- pending-run durability: runs the tracer must not forget ---------------------------------------------

@pytest.fixture(scope="module")
def quick_orphans(env: Env) -> Iterator[World]:
    """A world whose tracer saves a run with no record request one second after its cgroup is gone."""
    w = make_world(env, tracer={"idle_timeout": 600, "orphan_grace": 1})
    yield w
    w.stop_tracer()


def _wait_for_run(world: World, name: str, cid: str, timeout: float = 10) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        try:
            runs = [r for r in world.profile(name)["runs"] if r["container_id"] == cid]
        except FileNotFoundError:
            runs = []
        if runs:
            (run,) = runs
            return run  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"the run of {cid} was never recorded"
        time.sleep(0.5)


def _create_and_finish(world: World, name: str, args: list[str]) -> str:
    """A container created learning through syscage-runtime, started, and run to its end (not deleted)."""
    cid = world.env.name("c")
    bundle = world.env.bundle(args, learn=False, seccomp=None,
                              annotations={"io.syscage.mode": "learn", "io.syscage.profile": name})
    root = ["--root", str(world.root / "runc")]
    for step in (["create", "--bundle", str(bundle), cid], ["start", cid]):
        # Not pipes: the container holds the create's stdio open until it exits.
        with tempfile.TemporaryFile("w+") as err:
            done = subprocess.run([WRAPPER, *root, *step], env=world.environ(), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=err, timeout=60, check=False)
            err.seek(0)
            assert done.returncode == 0, err.read()
    deadline = time.monotonic() + 60
    while '"stopped"' not in subprocess.run(["runc", *root, "state", cid], capture_output=True, text=True,
                                            check=False).stdout:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return cid


@pytest.mark.parametrize("check_marker", [False, True], ids=["run", "marker"])
def test_plain_runc_delete_is_saved_incomplete(quick_orphans: World, check_marker: bool) -> None:
    """Created through syscage-runtime, deleted with plain runc: no record request ever comes. The tracer
    saves the run, incomplete, once the cgroup is gone; and the learning marker `create` left goes too."""
    world, name = quick_orphans, quick_orphans.env.name("plain-delete")
    cid = _create_and_finish(world, name, ["sh", "-c", "echo hi"])
    assert subprocess.run(["runc", "--root", str(world.root / "runc"), "delete", cid], check=False).returncode == 0
    run = _wait_for_run(world, name, cid)
    assert not run["complete"] and "no poststop hook" in " ".join(run["problems"])
    assert "write" in world.profile(name)["syscalls"]  # what was seen is kept
    if check_marker:
        assert world.leftover_files() == []


def test_plain_runc_delete_while_the_tracer_restarts(quick_orphans: World) -> None:
    """The same, but the tracer stops (and another starts) before the container is deleted: the pending run
    was durable from the moment the container was watched, so the new tracer still saves it."""
    world, name = quick_orphans, quick_orphans.env.name("plain-delete-restart")
    cid = _create_and_finish(world, name, ["sh", "-c", "echo hi"])
    world.stop_tracer()
    assert subprocess.run(["runc", "--root", str(world.root / "runc"), "delete", cid], check=False).returncode == 0
    subprocess.Popen([sys.executable, "-m", "syscage.hooks.daemon.tracer"], env=world.environ(),
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
    run = _wait_for_run(world, name, cid)  # saved, with what it saw, by the tracer that stopped
    assert not run["complete"] and run["problems"]
    deadline = time.monotonic() + 60  # the new tracer sweeps the markers of gone containers once it runs
    while world.leftover_files():
        assert time.monotonic() < deadline, world.leftover_files()
        time.sleep(0.5)
    assert [r["container_id"] for r in world.profile(name)["runs"]] == [cid]  # saved once


def test_tracer_stopped_with_containers_watched_keeps_what_it_saw(world: World) -> None:
    """`syscage tracer stop` while a container learns: its run is recorded once, incomplete, and what the
    tracer saw before it stopped is kept, not thrown away."""
    name, cid = world.env.name("stopped"), world.env.name("c")
    fs = world.rootfs()
    assert world.daemon is not None
    results: list[subprocess.CompletedProcess[str]] = []
    args = ["sh", "-c", "mkdir /tmp/before; sleep 3; echo end"]
    learner = threading.Thread(target=lambda: results.append(world.daemon.run(  # type: ignore[union-attr]
        fs, cid, args, {"io.syscage.mode": "learn", "io.syscage.profile": name}, runc_binary=WRAPPER)))
    learner.start()
    deadline = time.monotonic() + 60
    while not (fs / "tmp" / "before").exists():  # the container has made its mkdir: the tracer saw it
        assert time.monotonic() < deadline
        time.sleep(0.05)
    world.stop_tracer()
    learner.join(timeout=120)
    (result,) = results
    assert result.returncode == 0 and result.stdout == "end\n", result.stderr
    run = _wait_for_run(world, name, cid)
    assert not run["complete"] and run["problems"]
    assert {"mkdir", "mkdirat"} & set(world.profile(name)["syscalls"])


def test_disk_full_at_record_loses_no_run(env: Env) -> None:
    """The store's file system is full when a run is recorded: that run is not lost. Once there is room
    again, the profile accounts for it (recorded, complete or honestly incomplete)."""
    world = make_world(env, tracer={"idle_timeout": 600})
    world.store.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(world.store)], check=True)
    try:
        name = world.env.name("full")
        first = _create_and_finish(world, name, ["sh", "-c", "echo one"])
        subprocess.run([WRAPPER, "--root", str(world.root / "runc"), "delete", first], env=world.environ(),
                       check=False, capture_output=True, timeout=60)
        assert world.profile(name)["runs_total"] == 1
        filler = world.store / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], check=False, capture_output=True)
        lost = _create_and_finish(world, name, ["sh", "-c", "echo two"])
        failed = subprocess.run([WRAPPER, "--root", str(world.root / "runc"), "delete", lost], env=world.environ(),
                                check=False, capture_output=True, text=True, timeout=60)
        print(f"\ndelete with the store full: exit {failed.returncode}, {failed.stderr.strip()!r}")
        assert world.profile(name)["runs_total"] == 1  # the disk really was full
        filler.unlink()
        third = _create_and_finish(world, name, ["sh", "-c", "echo three"])
        subprocess.run([WRAPPER, "--root", str(world.root / "runc"), "delete", third], env=world.environ(),
                       check=False, capture_output=True, timeout=60)
        deadline = time.monotonic() + 10
        while lost not in {r["container_id"] for r in world.profile(name)["runs"]}:
            assert time.monotonic() < deadline, "the run recorded while the disk was full is lost"
            time.sleep(0.5)
        assert world.profile(name)["runs_total"] == 3
    finally:
        world.stop_tracer()
        subprocess.run(["umount", str(world.store)], check=False)
