"""The tracer process itself: its own cgroup, one compile for many containers, idle exit."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from integration import bpf_objects
from integration.env import Env, write_config
from syscage.config import load_config
from syscage.hooks.daemon.tracer_bpf import (
    PROG_MEDIATED,
    PROGRAMS,
    SlotReport,
    SyscallRecorder,
    cgroup2_mount,
    container_identity,
)
from syscage.protocol import request

# The kernels syscage runs on may load BPF under the 4096-instruction program limit; the margin makes the next
# addition to a program fail here rather than leave containers untraced in production.
MAX_PROGRAM_INSNS = 3500


def test_tracer_lives_in_its_own_cgroup(env: Env) -> None:
    assert env.run(env.bundle(["true"], profile=env.name("cg"))).returncode == 0
    pid = env.tracer_pid()
    assert pid is not None
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    assert lines and all(line.endswith(":/syscage") for line in lines), lines


def test_one_tracer_serves_many_containers(env: Env) -> None:
    assert env.run(env.bundle(["true"], profile=env.name("many"))).returncode == 0
    first = env.tracer_pid()
    for _ in range(3):
        assert env.run(env.bundle(["true"], profile=env.name("many"))).returncode == 0
    assert env.tracer_pid() == first
    status = request(load_config(), {"op": "status"})
    assert status["pid"] == first and status["watching"] == []  # flushed containers are released


def test_each_tracer_program_stays_under_the_size_limit() -> None:
    """The compile the tracer does, each program's size, and the kernel loading the two sys_enter programs
    (on_sys_enter and on_mediated, its tail call target, which the recorder puts in its program array)."""
    recorder = SyscallRecorder(max_slots=2, max_threads=64)
    try:
        sizes = {name: len(recorder.bpf.dump_func(name.encode())) // 8 for name in PROGRAMS}
        print(f"instructions per program: {sizes}")
        assert all(0 < size < MAX_PROGRAM_INSNS for size in sizes.values()), sizes
        assert recorder.bpf.load_func(b"on_sys_enter", recorder.bpf.RAW_TRACEPOINT).fd >= 0
        assert recorder.bpf[b"progs"][0].value > 0  # on_mediated (its program id), or the tail call has no target
    finally:
        recorder.close()


def test_tracer_detaches_when_idle(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    write_config(config, tmp_path)
    environ = {**os.environ, "SYSCAGE_CONFIG": str(config)}
    before = {(o.kind, o.id) for o in bpf_objects.loaded()}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "syscage.hooks.daemon.tracer", "--idle-timeout", "2"], env=environ,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # What it loaded, read from its descriptors while it runs (the socket appears once the BPF is loaded).
    while not (tmp_path / "run" / "tracer.sock").exists():
        assert proc.poll() is None and time.monotonic() - started < 60, "the tracer never listened"
        time.sleep(0.05)
    held = bpf_objects.held_by(proc.pid)
    # Its programs and maps, by name: new objects, every map tracer.c defines (a program attached to a raw
    # tracepoint is held through its attachment, whose descriptor names no program).
    names = {(o.kind, o.name) for o in bpf_objects.loaded() if (o.kind, o.id) in held}
    progs = {name for kind, name in names if kind == "prog"}
    assert progs and progs <= bpf_objects.TRACER_PROGS, names
    assert {name for kind, name in names if kind == "map"} >= bpf_objects.TRACER_MAPS, names
    assert not held & before
    assert proc.wait(timeout=60) == 0
    elapsed = time.monotonic() - started
    assert 2 <= elapsed < 30
    assert not (tmp_path / "run" / "tracer.sock").exists()
    assert "tracer idle, detaching" in (tmp_path / "syscage.log").read_text()
    # And nothing of it stays loaded: none of its programs and maps, and no syscage-named object that
    # nobody holds (a pinned or still-attached one); other tracers running meanwhile hold theirs.
    assert bpf_objects.still_loaded(held) == set()
    assert bpf_objects.orphaned_tracer_objects() == set()
    # Counted before and after: none of the programs and maps it held is loaded any more (other test
    # sessions' tracers may come and go meanwhile, so only its own are counted).
    after = {(o.kind, o.id) for o in bpf_objects.loaded()}
    assert len(after & held) == 0 and len(held) >= len(progs) + len(bpf_objects.TRACER_MAPS)


def test_run_without_poststop_is_saved_incomplete(env: Env, tmp_path: Path) -> None:
    """A runtime that never runs poststop (it crashed): the tracer saves the run once the cgroup is gone."""
    config = tmp_path / "config.toml"
    write_config(config, tmp_path, tracer={"orphan_grace": 1})
    name = env.name("orphan")
    bundle = env.bundle(["sh", "-c", "echo hi"], profile=name)
    spec = json.loads((bundle / "config.json").read_text())
    del spec["hooks"]["poststop"]
    spec["hooks"]["prestart"][0]["env"] = [f"SYSCAGE_CONFIG={config}"]
    (bundle / "config.json").write_text(json.dumps(spec))
    try:
        assert env.run(bundle).returncode == 0
        profile_file = tmp_path / "store" / "profiles" / name / "profile.json"
        deadline = time.monotonic() + 30
        while not profile_file.exists():
            assert time.monotonic() < deadline, "the orphaned run was never saved"
            time.sleep(0.5)
        profile = json.loads(profile_file.read_text())
        assert not profile["complete"] and "no poststop hook" in profile["runs"][0]["problems"][0]
        assert "write" in profile["syscalls"]  # what was seen is kept, not thrown away
    finally:
        pid = int((tmp_path / "run" / "tracer.pid").read_text())
        os.kill(pid, signal.SIGTERM)


# A child in a cgroup of its own: it waits for the go on stdin, loads an allow-all seccomp filter (the cut-over:
# from here on it is armed), opens a file (openat: a mediated syscall) and exits.
_ARMED_OPEN = r"""
import ctypes, sys
sys.stdin.readline()
libc = ctypes.CDLL(None, use_errno=True)
class Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Filter))]
allow = (Filter * 1)(Filter(0x06, 0, 0, 0x7FFF0000))  # BPF_RET|BPF_K SECCOMP_RET_ALLOW
assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
assert libc.prctl(22, 2, ctypes.byref(Prog(1, allow)), 0, 0) == 0  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
open("/etc/hostname").close()
"""


def _armed_open(recorder: SyscallRecorder, cgroup: Path) -> SlotReport:
    child = subprocess.Popen([sys.executable, "-c", _ARMED_OPEN], stdin=subprocess.PIPE, text=True)
    try:
        (cgroup / "cgroup.procs").write_text(str(child.pid))
        ident = container_identity(child.pid)
        slot = recorder.add(ident.cgroup_id, ident.pidns_dev, ident.pidns_ino, exec_mode=False)
        child.communicate("go\n", timeout=60)
        assert child.returncode == 0
        report = recorder.collect(slot)
        recorder.remove(ident.cgroup_id, slot)
        return report
    finally:
        child.kill()
        child.wait()


def test_a_failed_tail_call_counts_the_path_as_lost(tmp_path: Path) -> None:
    """The path recording is on_mediated, reached by tail call: with it, an armed thread's open is recorded;
    without it in the program array, the open is counted as a lost path (the files part is then incomplete)."""
    mount = cgroup2_mount()
    assert mount is not None
    cgroup = mount / f"syscage-test-tailcall-{os.getpid()}"
    cgroup.mkdir()
    recorder = SyscallRecorder(max_slots=2, max_threads=64)
    try:
        report = _armed_open(recorder, cgroup)
        assert b"/etc/hostname" in report.files and report.counters["paths_dropped"] == 0, report.counters
        del recorder.bpf[b"progs"][ctypes.c_int(PROG_MEDIATED)]
        report = _armed_open(recorder, cgroup)
        assert b"/etc/hostname" not in report.files and report.counters["paths_dropped"] >= 1, report.counters
    finally:
        recorder.close()
        cgroup.rmdir()
