"""Container life-cycle figures: start overhead (warm and cold tracer), profile readiness, the runtime
wrapper's passthrough cost, and `ctr run` end to end through containerd."""

from __future__ import annotations

import shutil
import time

from bench.harness import RUNC, Bench, BenchError, Figure, med, ms, summary, timed
from integration.containerd import start_containerd

WARM_TARGET = 0.15
COLD_TARGET = 2.5
WRAPPER_TARGET = 1.1
CTR_LEARN_TARGET = 1.5
CTR_ENFORCE_TARGET = 1.1
CTR_OFF_TARGET = 1.1
HANDLER = "io.containerd.syscage.v2"


def start_warm(b: Bench) -> list[Figure]:
    b.warm_tracer()
    learn = b.bundle(["true"], "learn", "bench-start")
    plain = b.bundle(["true"], "learn", "bench-start", hooks=False)
    learned: list[float] = []
    bare: list[float] = []
    for i in range(b.reps(12, 3)):
        if i % 2:
            bare.append(b.run(plain)[0])
            learned.append(b.learn_run(learn, "bench-start"))
        else:
            learned.append(b.learn_run(learn, "bench-start"))
            bare.append(b.run(plain)[0])
    added = med(learned) - med(bare)
    return [Figure(1, "start-warm", "learn start overhead, tracer warm (runc run true)", "s added", added,
                   min(learned) - min(bare), f"<= {WARM_TARGET} s", added <= WARM_TARGET,
                   {"learn": summary(learned), "no_hooks": summary(bare)},
                   note=f"learn {ms(med(learned))} vs no hooks {ms(med(bare))} (medians of {len(bare)})")]


def start_cold(b: Bench) -> list[Figure]:
    learn = b.bundle(["true"], "learn", "bench-cold")
    plain = b.bundle(["true"], "learn", "bench-cold", hooks=False)
    cold: list[float] = []
    bare: list[float] = []
    compile_s: list[float] = []
    for _ in range(b.reps(3, 1)):
        b.stop_tracer()
        cold.append(b.learn_run(learn, "bench-cold"))
        compile_s.append(float(b.tracer_status().get("compile_seconds", 0.0)))
        bare.append(b.run(plain)[0])
    added = med(cold) - med(bare)
    return [Figure(2, "start-cold", "learn start overhead, tracer cold (first container)", "s added", added,
                   min(cold) - min(bare), f"<= {COLD_TARGET} s", added <= COLD_TARGET,
                   {"cold": summary(cold), "no_hooks": summary(bare), "bpf_compile_s": summary(compile_s)},
                   note=f"cold {ms(med(cold))} vs no hooks {ms(med(bare))}; the tracer's BPF compile took "
                        f"{ms(med(compile_s))}")]


def ready(b: Bench) -> list[Figure]:
    if not b.ready_checks:
        bundle = b.bundle(["true"], "learn", "bench-ready")
        for _ in range(b.reps(5, 2)):
            b.learn_run(bundle, "bench-ready")
    present = sum(1 for c in b.ready_checks if c["present_at_return"])
    total = len(b.ready_checks)
    delays = [c["delay_s"] for c in b.ready_checks]
    return [Figure(3, "ready", f"profile ready after runc returns ({present}/{total} runs present at return)",
                   "s", max(delays), min(delays), "0 s (all present)", present == total,
                   {"present_at_return": present, "runs": total, "checks": b.ready_checks},
                   note="learning runs of figures 1-2 (or its own): profile.json read the moment runc returned")]


def wrapper(b: Bench) -> list[Figure]:
    cid = b.detach(b.bundle(["sleep", "600"]))
    try:
        root = ["--root", str(b.runc_root)]
        commands = {"python": [b.python, "-c", "pass"], "runc": [RUNC, *root, "state", cid],
                    "syscage-runtime": [b.wrapper, *root, "state", cid]}
        times: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(b.reps(30, 5)):
            for key, cmd in commands.items():
                wall, result = timed(cmd)
                if result.returncode != 0:
                    raise BenchError(f"{' '.join(cmd)} failed: {result.stderr.strip()[-300:]}")
                times[key].append(wall)
    finally:
        b.delete([cid])
    ratio = med(times["syscage-runtime"]) / med(times["runc"])
    best = min(times["syscage-runtime"]) / min(times["runc"])
    note = ", ".join(f"{k} {ms(med(v))}" for k, v in times.items()) + f" (medians of {len(times['runc'])}); the " \
        "launcher execs runc without Python (python -c pass for scale)"
    return [Figure(7, "wrapper", "wrapper passthrough: syscage-runtime state / runc state", "x",
                   ratio, best, f"<= {WRAPPER_TARGET}x", ratio <= WRAPPER_TARGET,
                   {k: summary(v) for k, v in times.items()}, note)]


def containerd(b: Bench) -> list[Figure]:
    rootfs = b.root / "ctr-rootfs"  # ctr mounts --rootfs writable: never hand it the shared one
    if not rootfs.exists():
        shutil.copytree(b.rootfs, rootfs, symlinks=True)
    if b.containerd is None:
        b.containerd = start_containerd(b.root / "containerd", b.bin, {"SYSCAGE_CONFIG": str(b.config)})
    daemon = b.containerd
    b.warm_tracer()

    def ctr_run(notes: dict[str, str], binary: str | None, extra: list[str] | None = None,
                runtime: str | None = None) -> float:
        cid = b.name("ctr")
        start = time.perf_counter()
        result = daemon.run(rootfs, cid, ["true"], notes, runc_binary=binary, extra=extra, runtime=runtime)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            raise BenchError(f"ctr run {cid} {notes} failed: {(result.stderr or result.stdout).strip()[-400:]}")
        return wall

    ctr_run({"io.syscage.mode": "learn", "io.syscage.profile": "bench-ctr-enforce"}, b.wrapper)
    learned = b.profile("bench-ctr-enforce")
    if not learned or not learned["complete"]:
        raise BenchError(f"profile learned through containerd is missing or incomplete: {learned}")
    # runc's own cost of installing that filter (no syscage involved), to read the enforce figure by
    filter_flags = ["--seccomp", "--seccomp-profile", str(b.store / "profiles" / "bench-ctr-enforce" / "seccomp.json")]
    cases = {"runc": ({}, RUNC), "runc+filter": ({}, RUNC, filter_flags), "off": ({}, b.wrapper),
             "handler": ({}, None, None, HANDLER),
             "learn": ({"io.syscage.mode": "learn", "io.syscage.profile": "bench-ctr-learn"}, b.wrapper),
             "enforce": ({"io.syscage.mode": "enforce", "io.syscage.profile": "bench-ctr-enforce"}, b.wrapper)}
    times: dict[str, list[float]] = {k: [] for k in cases}
    for i in range(b.reps(14, 2)):  # the ratios' run-to-run spread is about +-0.06 at 10
        order = list(cases) if i % 2 == 0 else list(reversed(cases))
        for key in order:
            times[key].append(ctr_run(*cases[key]))
    detail = {k: summary(v) for k, v in times.items()}
    note = ", ".join(f"{k} {ms(med(v))}" for k, v in times.items()) + f" (medians of {len(times['off'])})"
    figures = []
    for key, target in (("learn", CTR_LEARN_TARGET), ("enforce", CTR_ENFORCE_TARGET)):
        ratio = med(times[key]) / med(times["off"])
        figures.append(Figure(8, f"containerd-{key}", f"ctr run true: {key} / off (through syscage-runtime)", "x",
                              ratio, min(times[key]) / min(times["off"]), f"<= {target}x", ratio <= target, detail,
                              note if key == "learn" else ""))
    for key, via in (("off", "syscage-runtime as the runc binary"), ("handler", f"the runtime handler {HANDLER}")):
        ratio = med(times[key]) / med(times["runc"])
        figures.append(Figure(8, f"containerd-{'wrapper' if key == 'off' else key}",
                              f"ctr run true: off via {via} / plain runc", "x", ratio,
                              min(times[key]) / min(times["runc"]), f"<= {CTR_OFF_TARGET}x", ratio <= CTR_OFF_TARGET,
                              detail))
    figures.append(Figure(8, "containerd-filter", "  reference: plain runc, the profile's filter given by ctr / none",
                          "x", med(times["runc+filter"]) / med(times["runc"]),
                          min(times["runc+filter"]) / min(times["runc"]), "-", None, detail,
                          note="what installing a seccomp filter costs runc itself: part of every enforce"))
    return figures
