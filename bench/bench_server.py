"""A real server's throughput while it learns: Debian's redis server in a container (a busybox rootfs with the host's
/usr bound in, read-only), loaded by redis-benchmark on the host over a unix socket in a bound directory. Learn
against off, and off with an empty BPF program on sys_enter (the floor of any sys_enter tracer), in rounds that
cycle through the three; each measurement starts its own container, so an off round never runs while a container
is watched (the tracepoint is host-wide)."""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
import time
from pathlib import Path

from bench.harness import Bench, BenchError, EmptySysEnterProgram, Figure, med, summary, timed
from integration.env import allow_all_seccomp
from syscage.bundle import make_busybox_rootfs, write_bundle

TARGET = 0.95
# Debian's redis-server is a link to this binary, which runs as the server under any other name (redis-tools).
SERVER_BINARY = Path("/usr/bin/redis-check-rdb")
CLIENT = "redis-benchmark"
REQUESTS = 40_000
CLIENTS = 16
TESTS = "set,get,incr,lpush,lpop"


def _rootfs(b: Bench) -> Path:
    rootfs = b.root / "server-rootfs"
    if not rootfs.exists():
        make_busybox_rootfs(rootfs)
        for name in ("lib", "lib64"):  # merged /usr: the dynamic loader and libraries come with the /usr mount
            (rootfs / name).symlink_to(f"usr/{name}")
        (rootfs / "usr").mkdir()
        (rootfs / "sock").mkdir()
        (rootfs / "bin" / "redis-server").symlink_to(SERVER_BINARY)
    return rootfs


def _bundle(b: Bench, mode: str, sock_dir: Path) -> Path:
    notes = {"io.syscage.mode": mode, "io.syscage.profile": "bench-server"} if mode == "learn" else {}
    args = ["redis-server", "--port", "0", "--unixsocket", "/sock/redis.sock", "--unixsocketperm", "777",
            "--save", "", "--appendonly", "no", "--protected-mode", "no"]
    bundle = write_bundle(b.root / "bundles" / b.name("srv"), _rootfs(b), args, annotations=notes,
                          hooks=b.hooks if mode == "learn" else None, seccomp=allow_all_seccomp())
    spec = json.loads((bundle / "config.json").read_text())
    spec["mounts"] += [{"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]},
                       {"destination": "/sock", "type": "bind", "source": str(sock_dir), "options": ["rbind", "rw"]}]
    (bundle / "config.json").write_text(json.dumps(spec, indent=2))
    return bundle


def _throughput(sock: Path) -> float:
    """Requests per second over all the tests (redis-benchmark's own figures, averaged harmonically)."""
    _, result = timed([CLIENT, "-s", str(sock), "-n", str(REQUESTS), "-c", str(CLIENTS), "-t", TESTS, "--csv"])
    if result.returncode != 0:
        raise BenchError(f"{CLIENT} failed: {result.stderr.strip()[-300:]}")
    rows = [r for r in csv.reader(result.stdout.splitlines()) if r and r[0] != "test"]
    if len(rows) != len(TESTS.split(",")):
        raise BenchError(f"unexpected {CLIENT} output: {result.stdout.strip()[-300:]}")
    return len(rows) / sum(1 / float(r[1]) for r in rows)


def _serve(b: Bench, mode: str) -> float:
    sock_dir = b.root / "sock" / b.name("s")
    sock_dir.mkdir(parents=True)
    sock = sock_dir / "redis.sock"
    cid = b.detach(_bundle(b, mode, sock_dir))
    try:
        deadline = time.monotonic() + 30
        while not sock.exists():
            if time.monotonic() > deadline:
                raise BenchError(f"redis in container {cid} did not open {sock} within 30 s")
            time.sleep(0.02)
        timed(["redis-cli", "-s", str(sock), "ping"])
        return _throughput(sock)
    finally:
        b.delete([cid])
        shutil.rmtree(sock_dir, ignore_errors=True)


def server(b: Bench) -> list[Figure]:
    if not SERVER_BINARY.exists() or shutil.which(CLIENT) is None:
        raise BenchError(f"{SERVER_BINARY} or {CLIENT} is missing: install redis-tools (make deps does)")
    b.warm_tracer()
    rps: dict[str, list[float]] = {"off": [], "learn": [], "floor": []}
    empty = EmptySysEnterProgram()
    try:
        for i in range(b.reps(5, 1)):
            for key in (list(rps) if i % 2 == 0 else list(reversed(rps))):
                with empty if key == "floor" else contextlib.nullcontext():
                    rps[key].append(_serve(b, "learn" if key == "learn" else "off"))
    finally:
        empty.close()
    learned = b.profile("bench-server")
    if not learned or not learned.get("runs"):
        raise BenchError("the learning server runs were not recorded")
    ratio = med(rps["learn"]) / med(rps["off"])
    floor = med(rps["floor"]) / med(rps["off"])
    detail = {f"rps_{k}": summary(v) for k, v in rps.items()}
    detail["floor_ratio"] = round(floor, 3)
    note = (f"redis {TESTS}, {REQUESTS} requests x {CLIENTS} clients per test: learn {med(rps['learn']):.0f} vs off "
            f"{med(rps['off']):.0f} req/s (medians of {len(rps['off'])}); floor (empty sys_enter program) {floor:.3f}")
    return [Figure(11, "server-throughput", "redis in a container, throughput learn / off (redis-benchmark)", "x",
                   ratio, min(rps["learn"]) / min(rps["off"]), f">= {TARGET}x", ratio >= TARGET, detail, note),
            Figure(11, "server-floor", "  floor: off with an empty BPF program on sys_enter / off", "x", floor,
                   min(rps["floor"]) / min(rps["off"]), "- (reference)", None, detail)]
