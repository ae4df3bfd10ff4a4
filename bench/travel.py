"""Figures for profiles that travel (run as root: `.venv/bin/python bench/travel.py`):

- checkpoint: the tracer's CPU time (user + system, from /proc/PID/stat) per checkpoint with 20 containers
  learning into 20 profiles, over several `syscage snapshot --all` rounds;
- import: the wall time of `syscage import` (in process, and the command) of 10 node files of a
  200-syscall profile, into an empty store and again (nothing changes).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

CONTAINERS = 20
ROUNDS = 10
NODES = 10
SYSCALLS = 200


def node_files(directory: Path) -> list[str]:
    """10 node files of one profile: 200 syscalls each (overlapping), 20 runs each, from 10 nodes."""
    from syscage.profile import Observation, merge, new_profile
    from syscage.store import dump_json
    from syscage.syscalls import native_arch, syscall_number

    names = [n for n in _syscall_names() if syscall_number(n) is not None][:SYSCALLS + NODES]
    paths = []
    for node in range(NODES):
        profile = new_profile("bench", native_arch(), "2026-01-01T00:00:00.000Z")
        for run in range(20):
            when = f"2026-01-{1 + run:02d}T00:00:0{node}.000Z"
            obs = Observation(container_id=f"c{run}", started=when, stopped=when, cutover="seccomp",
                              syscalls=names[node:node + SYSCALLS])
            profile = merge(profile, obs, when)
            profile["runs"][-1]["node"] = f"node-{node}"
        path = directory / f"node-{node}.json"
        path.write_bytes(dump_json(profile))
        paths.append(str(path))
    return paths


def _syscall_names() -> list[str]:
    from syscage.dockerdefault import ALLOWED

    return sorted(ALLOWED)


def bench_import(root: Path) -> dict[str, float]:
    from syscage.config import load_config
    from syscage.travel import import_files

    files = node_files(root / "files")
    config_path = root / "import.toml"
    config_path.write_text(f'[paths]\nstore = "{root}/istore"\nrun_dir = "{root}/irun"\nlog_file = "{root}/ilog"\n')
    os.environ["SYSCAGE_CONFIG"] = str(config_path)
    config = load_config()
    first, again = [], []
    for _ in range(5):
        subprocess.run(["rm", "-rf", f"{root}/istore"], check=True)
        started = time.perf_counter()
        import_files(config, files, None)
        first.append(time.perf_counter() - started)
        started = time.perf_counter()
        _, changed, _ = import_files(config, files, None)
        again.append(time.perf_counter() - started)
        assert not changed
    command = []
    for _ in range(3):
        subprocess.run(["rm", "-rf", f"{root}/istore"], check=True)
        started = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "syscage"), "import", *files], check=True,
                       capture_output=True)
        command.append(time.perf_counter() - started)
    return {"import_10_files_ms": statistics.median(first) * 1000,
            "reimport_unchanged_ms": statistics.median(again) * 1000,
            "import_command_ms": statistics.median(command) * 1000}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_checkpoint(root: Path) -> dict[str, float]:
    from integration.env import HOOK, learn_hooks, write_config
    from syscage.bundle import make_busybox_rootfs, write_bundle
    from syscage.shim.modifiers import allow_all_filter

    root.mkdir(parents=True, exist_ok=True)
    config = root / "config.toml"
    # A long interval: only the rounds below checkpoint.
    write_config(config, root, tracer={"idle_timeout": 600, "checkpoint_interval": 86400})
    rootfs = make_busybox_rootfs(root / "rootfs")
    stop = rootfs / "stop"  # the containers see it as /stop (their rootfs is read-only to them only)
    environ = {**os.environ, "SYSCAGE_CONFIG": str(config)}
    hooks = learn_hooks(str(HOOK), [f"SYSCAGE_CONFIG={config}"])
    running = []
    workload = ["sh", "-c", "ls / >/dev/null; cat /etc/hostname >/dev/null; while [ ! -e /stop ]; do sleep 0.2; done"]
    for i in range(CONTAINERS):
        bundle = write_bundle(root / f"b{i}", rootfs, workload, seccomp=allow_all_filter(), hooks=hooks,
                              annotations={"io.syscage.mode": "learn", "io.syscage.profile": f"bench-{i}"})
        command = ["runc", "--root", str(root / "runc"), "run", "-b", str(bundle), f"bench-{i}"]
        running.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, env=environ))
    syscage = str(Path(sys.executable).parent / "syscage")
    try:
        deadline = time.monotonic() + 300
        while True:
            status = subprocess.run([syscage, "tracer", "status"], capture_output=True, text=True, env=environ)
            if status.returncode == 0 and status.stdout.count("bench-") >= CONTAINERS:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the containers were never all watched: {status.stdout}")
            time.sleep(0.5)
        pid = int((root / "run" / "tracer.pid").read_text())
        time.sleep(1)
        per_round, walls = [], []
        for _ in range(ROUNDS):
            before = _cpu_seconds(pid)
            started = time.perf_counter()
            done = subprocess.run([syscage, "snapshot", "--all"], capture_output=True, text=True, env=environ)
            walls.append(time.perf_counter() - started)
            assert done.returncode == 0 and f"checkpointed {CONTAINERS}" in done.stdout, done
            per_round.append(_cpu_seconds(pid) - before)
        return {"tracer_cpu_per_checkpoint_ms": statistics.median(per_round) * 1000,
                "tracer_cpu_per_container_ms": statistics.median(per_round) * 1000 / CONTAINERS,
                "snapshot_wall_ms": statistics.median(walls) * 1000}
    finally:
        stop.touch()
        for proc in running:
            proc.wait(timeout=120)
        subprocess.run([syscage, "tracer", "stop"], capture_output=True, env=environ)


def main() -> int:
    if os.geteuid() != 0:
        print("bench/travel.py needs root (runc, eBPF)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="syscage-travel-") as tmp:
        root = Path(tmp)
        (root / "files").mkdir()
        figures = {**bench_import(root), **bench_checkpoint(root / "ck")}
    for name, value in figures.items():
        print(f"{name:32} {value:10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
