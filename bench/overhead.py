"""Tracing overhead: a syscall-bound loop (busybox dd, bs=1) inside a learning container, on the host while
containers learn, and under strace for reference; the tracer's memory as containers are added."""

from __future__ import annotations

import re
import shutil

from bench.harness import DEVNULL, Bench, BenchError, Figure, med, rss_kb, summary, timed

COUNT = 2_000_000  # 4 M syscalls (a read and a write per byte), about 2 s on the host
STRACE_COUNT = 20_000  # strace costs ~150x: the same loop at 2 M would take minutes
DD = ["dd", "if=/dev/zero", "of=/dev/null", "bs=1"]
BUSYBOX = "/bin/busybox"
IN_CONTAINER_TARGET = 1.25
HOST_TARGET = 1.15
NO_WORSE_SLACK = 0.03  # "20 no worse than 1" allows this much (in x) for noise
MEMORY_TARGET_MB = 150
FLEET = (1, 20, 50)

_REAL = re.compile(r"real\s+(?:(\d+)m\s*)?([\d.]+)s")


def _inner_seconds(stderr: str) -> float:
    """busybox `time` prints 'real\t0m 1.93s' on stderr."""
    match = _REAL.search(stderr)
    if not match:
        raise BenchError(f"no busybox time output in: {stderr.strip()[-300:]}")
    return int(match.group(1) or 0) * 60 + float(match.group(2))


def dd_in_container(b: Bench) -> list[Figure]:
    b.warm_tracer()
    args = ["sh", "-c", f"time {' '.join(DD)} count={COUNT}"]
    bundles = {"learn": b.bundle(args, "learn", "bench-dd"), "off": b.bundle(args, "off")}
    inner: dict[str, list[float]] = {k: [] for k in bundles}
    wall: dict[str, list[float]] = {k: [] for k in bundles}
    for i in range(b.reps(5, 2)):
        for key in (bundles if i % 2 == 0 else reversed(bundles)):
            seconds, result = b.run(bundles[key])
            wall[key].append(seconds)
            inner[key].append(_inner_seconds(result.stderr))
    ratio = med(inner["learn"]) / med(inner["off"])
    return [Figure(4, "dd", f"in-container dd bs=1 count={COUNT}: learn / off (busybox time inside)", "x", ratio,
                   min(inner["learn"]) / min(inner["off"]), f"<= {IN_CONTAINER_TARGET}x", ratio <= IN_CONTAINER_TARGET,
                   {"inner_learn": summary(inner["learn"]), "inner_off": summary(inner["off"]),
                    "wall_learn": summary(wall["learn"]), "wall_off": summary(wall["off"]),
                    "wall_ratio": round(med(wall["learn"]) / med(wall["off"]), 3),
                    "ns_per_syscall_added": round((med(inner["learn"]) - med(inner["off"])) / (2 * COUNT) * 1e9, 1)})]


def host_dd(b: Bench, count: int = COUNT, reps: int | None = None, prefix: list[str] | None = None) -> list[float]:
    cmd = [*(prefix or []), BUSYBOX, *DD, f"count={count}"]
    samples = []
    for _ in range(reps or b.reps(5, 2)):
        seconds, result = timed(cmd, capture_output=False, stdout=DEVNULL, stderr=DEVNULL)
        if result.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed with {result.returncode}")
        samples.append(seconds)
    return samples


def fleet(b: Bench, host: bool, memory: bool) -> list[Figure]:
    """Host dd with no tracer / tracer idle / 1 / 20 learners; tracer RSS with 0 / 1 / 20 / 50 learners."""
    dd: dict[str, list[float]] = {}
    rss: dict[str, int | None] = {}
    sleepers: list[str] = []
    watching: dict[str, int] = {}
    if host:
        b.stop_tracer()
        dd["no tracer"] = host_dd(b)
    b.warm_tracer()
    pid = b.tracer_pid()
    assert pid is not None
    if host:
        dd["tracer, 0 learning"] = host_dd(b)
    rss["0"] = rss_kb(pid)
    bundle = b.bundle(["sleep", "600"], "learn", "bench-fleet")
    try:
        for size in FLEET if memory else FLEET[:2]:
            sleepers += b.detach_many(bundle, size - len(sleepers))
            watching[str(size)] = len(b.tracer_status().get("watching", []))
            rss[str(size)] = rss_kb(pid)
            if host and size in (1, 20):
                dd[f"{size} learning"] = host_dd(b)
    finally:
        b.delete(sleepers)
    if b.tracer_pid() != pid:
        raise BenchError("the tracer restarted during the fleet measurement")
    figures = []
    if host:
        b.stop_tracer()
        dd["no tracer"] += host_dd(b)  # before and after: the baseline brackets the noisy middle
        base_med, base_min = med(dd["no tracer"]), min(dd["no tracer"])
        one, twenty = med(dd["1 learning"]) / base_med, med(dd["20 learning"]) / base_med
        detail = {"dd_s": {k: summary(v) for k, v in dd.items()},
                  "ratios": {k: round(med(v) / base_med, 3) for k, v in dd.items()}, "watching": watching}
        figures.append(Figure(5, "host-1", "host dd while 1 container learns / no tracer", "x", one,
                              min(dd["1 learning"]) / base_min, f"<= {HOST_TARGET}x", one <= HOST_TARGET, detail))
        figures.append(Figure(5, "host-20", "host dd while 20 containers learn / no tracer", "x", twenty,
                              min(dd["20 learning"]) / base_min, f"<= host-1 (+{NO_WORSE_SLACK})",
                              twenty <= one + NO_WORSE_SLACK, detail))
    if memory:
        mb = {k: (v / 1024 if v is not None else None) for k, v in rss.items()}
        at50 = mb.get("50")
        figures.append(Figure(6, "memory", "tracer RSS with 50 containers learning", "MB", at50, mb.get("0"),
                              f"<= {MEMORY_TARGET_MB} MB", at50 is not None and at50 <= MEMORY_TARGET_MB,
                              {"rss_mb_by_learners": {k: round(v, 1) if v else v for k, v in mb.items()},
                               "watching": watching, "best_column": "RSS with 0 learning"}))
    return figures


def strace(b: Bench) -> list[Figure]:
    if shutil.which("strace") is None:
        raise BenchError("strace is not installed (make deps installs it)")
    b.stop_tracer()  # measure ptrace alone
    reps = b.reps(3, 1)
    bare: list[float] = []
    traced: list[float] = []
    for _ in range(reps):
        bare += host_dd(b, STRACE_COUNT, 1)
        traced += host_dd(b, STRACE_COUNT, 1, ["strace", "-f", "-c", "-o", "/dev/null"])
    ratio = med(traced) / med(bare)
    return [Figure(10, "strace", f"reference: host dd count={STRACE_COUNT} under strace -f -c / bare", "x", ratio,
                   min(traced) / min(bare), "- (reference)", None,
                   {"strace": summary(traced), "bare": summary(bare),
                    "us_per_syscall_added": round((med(traced) - med(bare)) / (2 * STRACE_COUNT) * 1e6, 2)})]
