"""Under load: many containers learning at once through containerd, then many runs of one profile in a
row. Every run is recorded, each profile is exactly what its workloads need (no run's syscalls lost, none
leaked from a neighbour), and nothing is left behind: no process, no file, no BPF program or map.

Figures (containers, runs, the tracer's peak RSS, durations) are printed; see them with `pytest -s`."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from integration import bpf_objects
from integration.env import Env
from integration.private import WRAPPER, World, containerd_world, peak_rss_mb, tracer_bpf
from syscage.bundle import write_bundle

# Five profiles, two busybox workloads each, every one with syscalls of its own.
WORKLOADS: dict[str, list[list[str]]] = {
    "files": [["sh", "-c", "mkdir /tmp/d && rmdir /tmp/d"], ["sh", "-c", "echo x > /tmp/f; cat /tmp/f; rm /tmp/f"]],
    "nodes": [["sh", "-c", "mknod /tmp/p p && ls -l /tmp/p"], ["sh", "-c", "ln -s /bin /tmp/l && readlink /tmp/l"]],
    "sync": [["sync"], ["sh", "-c", "sleep 0.2"]],
    "info": [["uname", "-a"], ["sh", "-c", "cat /proc/self/status >/dev/null; id"]],
    "perm": [["sh", "-c", "touch /tmp/t && chmod 600 /tmp/t && stat /tmp/t"], ["hostname"]],
}
PER_PROFILE = 10  # containers per profile, the workloads taking turns: 50 containers at once
SEQUENTIAL = 200  # runs of one profile, one after the other
SEQUENTIAL_WORKLOAD = ["sh", "-c", "echo hi; ls /"]


@pytest.fixture(scope="module")
def world(env: Env) -> Iterator[World]:
    with containerd_world(env) as w:
        yield w


def test_many_containers_and_many_runs(world: World) -> None:
    started = time.monotonic()

    # One reference learn of each workload, alone: what it needs.
    need: dict[tuple[str, int], set[str]] = {}
    for profile, workloads in WORKLOADS.items():
        for i, args in enumerate(workloads):
            name = f"ref-{profile}-{i}"
            result = world.ctr_learn(world.env.name("ref"), args, name)
            assert result.returncode == 0, result.stderr
            reference = world.profile(name)
            assert reference["complete"], reference["incomplete_reasons"]
            need[profile, i] = set(reference["syscalls"])
    references_done = time.monotonic()

    # 50 containers at once, learning five profiles, half through each containerd route.
    jobs = [(profile, n % len(workloads), world.env.name("load"))
            for profile, workloads in WORKLOADS.items() for n in range(PER_PROFILE)]

    def run(job: tuple[str, int, str]) -> subprocess.CompletedProcess[str]:
        profile, i, cid = job
        via = "handler" if int(cid.rsplit("-", 1)[1]) % 2 else "binary-name"
        return world.ctr_learn(cid, WORKLOADS[profile][i], f"load-{profile}", via=via)

    with ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(run, jobs))
    concurrent_done = time.monotonic()
    assert [r.returncode for r in results] == [0] * len(jobs), [r.stderr for r in results if r.returncode]
    tracer = world.tracer_pid()
    assert tracer is not None

    for profile, workloads in WORKLOADS.items():
        learned = world.profile(f"load-{profile}")
        assert learned["runs_total"] == PER_PROFILE and len(learned["runs"]) == PER_PROFILE
        assert {r["container_id"] for r in learned["runs"]} == {cid for p, _, cid in jobs if p == profile}
        assert learned["complete"] and all(r["complete"] for r in learned["runs"]), learned["incomplete_reasons"]
        expected = set().union(*(need[profile, i] for i in range(len(workloads))))
        got = set(learned["syscalls"])
        assert got == expected, {"missing": expected - got, "foreign": got - expected}
        # Each run recorded what its own workload did: a syscall is counted in as many runs as there were
        # containers whose workload needs it.
        runs_per_workload = PER_PROFILE // len(workloads)
        counted = {s: e["runs"] for s, e in learned["syscalls"].items()}
        assert counted == {s: runs_per_workload * sum(s in need[profile, i] for i in range(len(workloads)))
                           for s in expected}

    # Many runs of one profile in a row, through syscage-runtime and runc (the faster route).
    bundle = write_bundle(world.root / "bundles" / "sequential", world.env.rootfs, SEQUENTIAL_WORKLOAD,
                          annotations={"io.syscage.mode": "learn", "io.syscage.profile": "sequential"})
    runc_root = world.root / "runc"
    for n in range(SEQUENTIAL):
        result = subprocess.run([WRAPPER, "--root", str(runc_root), "run", "--bundle", str(bundle), f"seq-{n}"],
                                env=world.environ(), capture_output=True, text=True, timeout=120, check=False,
                                stdin=subprocess.DEVNULL)
        assert result.returncode == 0 and result.stdout.startswith("hi\n"), (n, result.stderr)
        if n == 0:
            first = world.profile("sequential")
    sequential_done = time.monotonic()
    learned = world.profile("sequential")
    assert learned["runs_total"] == SEQUENTIAL and len(learned["runs"]) == 100  # the newest 100 are kept
    assert learned["complete"], learned["incomplete_reasons"]
    assert set(learned["syscalls"]) == set(first["syscalls"])  # the first run's set: nothing foreign later
    assert {e["runs"] for e in learned["syscalls"].values()} == {SEQUENTIAL}  # and nothing missing in any run

    # The tracer's memory, and what it holds in the kernel, before it goes.
    peak = peak_rss_mb(tracer)
    held = tracer_bpf(tracer)
    assert world.tracer_pid() == tracer  # one tracer served all of it
    print(f"\nload: {len(jobs)} containers at once ({len(WORKLOADS)} profiles) + {sum(map(len, WORKLOADS.values()))} "
          f"reference learns + {SEQUENTIAL} sequential runs; tracer peak RSS (VmHWM) {peak:.0f} MB; "
          f"references {references_done - started:.1f} s, concurrent {concurrent_done - references_done:.1f} s, "
          f"sequential {sequential_done - concurrent_done:.1f} s")
    assert peak < 300

    # Nothing left behind by the containers: no task, no container, no runtime state, no shim, runtime or hook
    # process, no marker, relay or temporary file.
    assert world.daemon is not None
    assert world.daemon.ctr("tasks", "ls", "-q").stdout.split() == []
    assert world.daemon.ctr("containers", "ls", "-q").stdout.split() == []
    assert subprocess.run(["runc", "--root", str(runc_root), "list", "-q"], capture_output=True, text=True,
                          check=True).stdout.split() == []
    related = _settled(lambda: [p for p in world.related_processes() if not p.startswith(f"{tracer}:")])
    assert related == []
    assert any(p.startswith(f"{tracer}:") for p in world.related_processes())  # the probe does see them
    assert world.leftover_files() == []

    # And nothing left by the tracer once it exits.
    world.stop_tracer()
    assert _settled(world.related_processes) == []
    assert bpf_objects.still_loaded(held) == set()
    assert bpf_objects.orphaned_tracer_objects() == set()
    assert world.leftover_files() == []
    assert not (world.run_dir / "tracer.sock").exists() and not (world.run_dir / "tracer.pid").exists()


def _settled(probe, timeout: float = 20) -> list[str]:  # type: ignore[no-untyped-def]
    """A shim exits a moment after containerd deleted its task: wait for what `probe` finds to go."""
    deadline = time.monotonic() + timeout
    while (found := probe()) and time.monotonic() < deadline:
        time.sleep(0.2)
    return found


