"""Tracing overhead: a syscall-bound loop (busybox dd, bs=1) inside a learning container, on the host while
containers learn, and under strace for reference; the tracer's memory as containers are added."""

from __future__ import annotations

import contextlib
import re
import resource
import shutil
import time
from typing import Any

from bench.harness import DEVNULL, Bench, BenchError, EmptySysEnterProgram, Figure, med, rss_kb, summary, timed

COUNT = 2_000_000  # 4 M syscalls (a read and a write per byte), about 2 s on the host
STRACE_COUNT = 20_000  # strace costs ~150x: the same loop at 2 M would take minutes
DD = ["dd", "if=/dev/zero", "of=/dev/null", "bs=1"]
BUSYBOX = "/bin/busybox"
# Tracing targets are relative to the floor measured in the same run: any program on sys_enter puts every thread of
# the host on the kernel's traced syscall path, which syscage cannot go below (see the README's Performance section).
OF_FLOOR_TARGET = 1.10
MEMORY_TARGET_MB = 150
FLEET = (1, 20, 50)

_TIME = re.compile(r"^(real|user|sys)\s+(?:(\d+)m\s*)?([\d.]+)s", re.MULTILINE)


def _busybox_time(stderr: str) -> dict[str, float]:
    """busybox `time` prints 'real\t0m 1.93s', then user and sys, on stderr."""
    found = {m.group(1): int(m.group(2) or 0) * 60 + float(m.group(3)) for m in _TIME.finditer(stderr)}
    if len(found) != 3:
        raise BenchError(f"no busybox time output in: {stderr.strip()[-300:]}")
    return found


def dd_in_container(b: Bench) -> list[Figure]:
    """CPU time (user+sys, busybox time inside) is the figure: on a shared 2-core host, wall time also counts
    waiting for a CPU. Wall (inside and of the whole runc run) is in the detail. The same loop in the mode-off
    container with an empty BPF program on sys_enter gives the floor of any sys_enter tracer, in the same run."""
    b.warm_tracer()
    args = ["sh", "-c", f"time {' '.join(DD)} count={COUNT}"]
    learn, off = b.bundle(args, "learn", "bench-dd"), b.bundle(args, "off")
    cases = {"learn": (learn, False), "off": (off, False), "floor": (off, True)}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    real: dict[str, list[float]] = {k: [] for k in cases}
    wall: dict[str, list[float]] = {k: [] for k in cases}
    empty = EmptySysEnterProgram()
    try:
        for i in range(b.reps(5, 2)):
            for key in (list(cases) if i % 2 == 0 else list(reversed(cases))):
                bundle, with_floor = cases[key]
                with empty if with_floor else contextlib.nullcontext():
                    seconds, result = b.run(bundle)
                times = _busybox_time(result.stderr)
                wall[key].append(seconds)
                real[key].append(times["real"])
                cpu[key].append(times["user"] + times["sys"])
    finally:
        empty.close()
    ratio = med(cpu["learn"]) / med(cpu["off"])
    floor = med(cpu["floor"]) / med(cpu["off"])
    detail: dict[str, Any] = {f"{what}_{k}": summary(v) for what, d in (("cpu", cpu), ("real", real), ("wall", wall))
                              for k, v in d.items()}
    detail["real_ratio"] = round(med(real["learn"]) / med(real["off"]), 3)
    detail["wall_ratio"] = round(med(wall["learn"]) / med(wall["off"]), 3)
    detail["floor_ratio"] = round(floor, 3)
    detail["cpu_ns_per_syscall_added"] = round((med(cpu["learn"]) - med(cpu["off"])) / (2 * COUNT) * 1e9, 1)
    detail["floor_ns_per_syscall"] = round((med(cpu["floor"]) - med(cpu["off"])) / (2 * COUNT) * 1e9, 1)
    own = detail["cpu_ns_per_syscall_added"] - detail["floor_ns_per_syscall"]
    return [Figure(4, "dd", f"in-container dd bs=1 count={COUNT}: learn / off (cpu, busybox time inside)", "x",
                   ratio, min(cpu["learn"]) / min(cpu["off"]), f"<= {OF_FLOOR_TARGET} x floor",
                   ratio <= OF_FLOOR_TARGET * floor, detail,
                   note=f"{ratio / floor:.3f}x the floor; cpu learn {med(cpu['learn']):.2f} s vs off "
                        f"{med(cpu['off']):.2f} s (+{detail['cpu_ns_per_syscall_added']} ns/syscall); real ratio "
                        f"{detail['real_ratio']}, whole runc run {detail['wall_ratio']}"),
            Figure(4, "dd-floor", "  floor: the same, mode off, with an empty BPF program on sys_enter / off", "x",
                   floor, min(cpu["floor"]) / min(cpu["off"]), "- (reference)", None, detail,
                   note=f"+{detail['floor_ns_per_syscall']} ns/syscall for a program that does nothing: "
                        f"syscage's own work adds {own:.1f} ns")]


def host_dd(b: Bench, count: int = COUNT, reps: int | None = None,
            prefix: list[str] | None = None) -> tuple[list[float], list[float]]:
    """(wall, cpu) seconds of the loop on the host; cpu is the children's user+sys from getrusage."""
    cmd = [*(prefix or []), BUSYBOX, *DD, f"count={count}"]
    wall, cpu = [], []
    for _ in range(reps or b.reps(5, 2)):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        seconds, result = timed(cmd, capture_output=False, stdout=DEVNULL, stderr=DEVNULL)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed with {result.returncode}")
        wall.append(seconds)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall, cpu


def fleet(b: Bench, host: bool, memory: bool) -> list[Figure]:
    """Host dd with no learner / an empty BPF program on sys_enter (the floor) / 1 / 20 learners, in rounds, and
    with no tracer at all (reference); tracer RSS with 0 / 1 / 20 / 50 learners.
    The dd figure is the loop's CPU time (user+sys): wall time on a shared 2-core host is mostly queueing noise."""
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    rss: dict[str, list[float]] = {}
    sleepers: list[str] = []
    watching: dict[str, int] = {}

    def measure(key: str, reps: int | None = None) -> None:
        w, c = host_dd(b, reps=reps)
        wall[key] = wall.get(key, []) + w
        cpu[key] = cpu.get(key, []) + c

    def sample_rss(key: str, pid: int, count: int) -> None:
        for i in range(count):
            time.sleep(0.2 * bool(i))
            rss[key] = [*rss.get(key, []), (rss_kb(pid) or 0) / 1024]

    empty = EmptySysEnterProgram() if host else None

    if host:
        b.stop_tracer()
        measure("no tracer", b.reps(3, 1))
    b.warm_tracer()
    pid = b.tracer_pid()
    assert pid is not None
    sample_rss("0", pid, 1)
    bundle = b.bundle(["sleep", "600"], "learn", "bench-fleet")
    if host:
        # No learner, the empty program, 1 and 20 learners in turn, several rounds: each ratio compares
        # measurements of the same minutes, which a noisy shared host needs (separate phases differ by ~10%).
        # With no learner the tracer runs idle, its sys_enter program detached.
        assert empty is not None
        for _ in range(b.reps(5, 1)):
            learners: list[str] = []
            try:
                measure("no learner", 1)
                with empty:
                    measure("empty program", 1)
                learners += b.detach_many(bundle, 1)
                measure("1 learning", 1)
                learners += b.detach_many(bundle, 19)
                watching["20"] = len(b.tracer_status().get("watching", []))
                measure("20 learning", 1)
            finally:
                b.delete(learners)
    if memory:
        try:
            for size in FLEET:
                sleepers += b.detach_many(bundle, size - len(sleepers))
                watching[str(size)] = len(b.tracer_status().get("watching", []))
                sample_rss(str(size), pid, 3 if size == FLEET[-1] else 1)
        finally:
            b.delete(sleepers)
    if b.tracer_pid() != pid:
        raise BenchError("the tracer restarted during the fleet measurement")
    figures = []
    if host:
        assert empty is not None
        empty.close()
        base = med(cpu["no learner"])
        floor = med(cpu["empty program"]) / base
        one, twenty = med(cpu["1 learning"]) / base, med(cpu["20 learning"]) / base
        detail = {"cpu_s": {k: summary(v) for k, v in cpu.items()}, "wall_s": {k: summary(v) for k, v in wall.items()},
                  "cpu_ratios_to_no_learner": {k: round(med(v) / base, 3) for k, v in cpu.items()},
                  "wall_ratios_to_no_learner": {k: round(med(v) / med(wall["no learner"]), 3)
                                                for k, v in wall.items()},
                  "watching": watching}
        note = "cpu ratios: " + ", ".join(f"{k} {v}" for k, v in detail["cpu_ratios_to_no_learner"].items()) + \
            f" (no learner {med(cpu['no learner']):.2f} s); wall: " + \
            ", ".join(f"{v}" for v in detail["wall_ratios_to_no_learner"].values())
        low = min(cpu["no learner"])
        figures.append(Figure(5, "host-1", "host dd (cpu) while 1 container learns / none learning", "x", one,
                              min(cpu["1 learning"]) / low, f"<= {OF_FLOOR_TARGET} x floor",
                              one <= OF_FLOOR_TARGET * floor, detail, f"{one / floor:.3f}x the floor; " + note))
        figures.append(Figure(5, "host-20", "host dd (cpu) while 20 containers learn / none learning", "x", twenty,
                              min(cpu["20 learning"]) / low, f"<= {OF_FLOOR_TARGET} x floor",
                              twenty <= OF_FLOOR_TARGET * floor, detail, f"{twenty / floor:.3f}x the floor"))
        figures.append(Figure(5, "host-floor", "  floor: host dd with an empty BPF program on sys_enter / none",
                              "x", floor, min(cpu["empty program"]) / low, "- (reference)", None,
                              detail, "any sys_enter tracer costs this much here"))
    if memory:
        at50 = rss.get(str(FLEET[-1]), [])
        figures.append(Figure(6, "memory", f"tracer RSS with {FLEET[-1]} containers learning", "MB",
                              med(at50) if at50 else None, min(at50) if at50 else None, f"<= {MEMORY_TARGET_MB} MB",
                              bool(at50) and med(at50) <= MEMORY_TARGET_MB,
                              {"rss_mb_by_learners": {k: round(med(v), 1) for k, v in rss.items()},
                               "watching": watching},
                              "RSS MB by learners: " + ", ".join(f"{k}: {med(v):.1f}" for k, v in rss.items())))
    return figures


def strace(b: Bench) -> list[Figure]:
    """ptrace's cost per syscall against the bare loop's. strace runs the loop at STRACE_COUNT (at COUNT it would
    take minutes); both sides are wall time per byte copied, so process start-up stays out of the bare side."""
    if shutil.which("strace") is None:
        raise BenchError("strace is not installed (make deps installs it)")
    b.stop_tracer()  # measure ptrace alone
    bare: list[float] = []
    traced: list[float] = []
    for _ in range(b.reps(3, 1)):
        bare += [w / COUNT for w in host_dd(b, COUNT, 1)[0]]
        traced += [w / STRACE_COUNT for w in host_dd(b, STRACE_COUNT, 1, ["strace", "-f", "-c", "-o", "/dev/null"])[0]]
    ratio = med(traced) / med(bare)
    return [Figure(10, "strace", f"reference: host dd under strace -f -c / bare (per byte; strace at count="
                   f"{STRACE_COUNT})", "x", ratio, min(traced) / min(bare), "- (reference)", None,
                   {"strace_s_per_byte": summary(traced), "bare_s_per_byte": summary(bare),
                    "us_per_syscall_added": round((med(traced) - med(bare)) / 2 * 1e6, 2)},
                   note=f"strace adds {(med(traced) - med(bare)) / 2 * 1e6:.1f} us per syscall "
                        f"(bare loop {med(bare) / 2 * 1e9:.0f} ns per syscall)")]
