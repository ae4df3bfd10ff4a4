"""The hook's own cost: poststop merging into a large profile, and what the hook's Python start-up spends."""

from __future__ import annotations

import json
import pstats
import time
from typing import Any

from bench.harness import Bench, BenchError, Figure, med, summary, timed

MERGE_TARGET = 0.2
SYSCALLS = 200
PRIOR_RUNS = 100
PROFILE = "bench-merge"


def _state(b: Bench, cid: str) -> str:
    return json.dumps({"ociVersion": "1.0.2", "id": cid, "status": "stopped", "bundle": str(b.root),
                       "annotations": {"io.syscage.mode": "learn", "io.syscage.profile": PROFILE}})


def merge(b: Bench) -> list[Figure]:
    from syscage.config import load_config
    from syscage.profile import Observation
    from syscage.store import ProfileStore, utc_now
    from syscage.syscalls import syscall_name

    names = [n for n in (syscall_name(nr) for nr in range(400)) if n][:SYSCALLS]
    if len(names) < SYSCALLS:
        raise BenchError(f"libseccomp names only {len(names)} syscalls below 400")
    store = ProfileStore(b.store, load_config().seccomp_errno)

    def record(cid: str) -> float:
        now = utc_now()
        start = time.perf_counter()
        store.record_run(PROFILE, Observation(container_id=cid, started=now, stopped=now, cutover="seccomp",
                                              syscalls=names))
        return time.perf_counter() - start

    seeding = [record(f"seed-{i}") for i in range(PRIOR_RUNS)]
    b.warm_tracer()
    hook: list[float] = []
    in_process: list[float] = []
    for _ in range(b.reps(10, 3)):
        cid = b.name("unknown")
        wall, result = timed([b.hook, "poststop"], input=_state(b, cid))
        if result.returncode != 0 or not b.profile_has_run(PROFILE, cid):
            raise BenchError(f"syscage-hook poststop failed ({result.returncode}): {result.stderr.strip()[-300:]}")
        hook.append(wall)
        in_process.append(record(b.name("inproc")))
    size = len(json.dumps(b.profile(PROFILE)))
    detail = {"poststop_hook": summary(hook), "record_run_in_process": summary(in_process),
              "record_run_while_seeding": summary(seeding), "profile_json_bytes": size,
              "note": "the hook's parent is this Python, so its `<parent> --version` call runs python, not runc"}
    return [Figure(9, "merge-hook", f"syscage-hook poststop, {SYSCALLS} syscalls, {PRIOR_RUNS}+ runs", "s", med(hook),
                   min(hook), f"<= {MERGE_TARGET} s", med(hook) <= MERGE_TARGET, detail,
                   note=f"profile.json {size // 1024} KiB; the tracer answers 'unknown container', so each run is "
                        "recorded incomplete"),
            Figure(9, "merge-store", "ProfileStore.record_run alone, in process (same profile)", "s",
                   med(in_process), min(in_process), "- (part of the above)", None, detail)]


def _importtime(stderr: str) -> dict[str, Any]:
    """Parse `python -X importtime`: the total, and the costliest imports by cumulative time (indented by depth,
    so the chain that pulls a heavy package in stays visible)."""
    modules: list[tuple[str, int, int]] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        head, cumulative, name = line.split("|", 2)
        modules.append((name[1:].rstrip(), int(head.split(":", 1)[1]), int(cumulative)))
    top = sorted(modules, key=lambda m: -m[2])[:12]
    return {"total_ms": round(sum(m[1] for m in modules) / 1000, 1),
            "top_cumulative_ms": {name: round(cum / 1000, 1) for name, _, cum in top}}


def imports(b: Bench) -> list[Figure]:
    """Where the hook's wall time goes: interpreter start, imports (-X importtime), and a cProfile of poststop."""
    b.warm_tracer()
    py = b.python
    walls = {"python -c pass": [py, "-c", "pass"],
             "import syscage.hooks.hook (+client)": [py, "-c", "import syscage.hooks.hook, syscage.hooks.client"]}
    here = str(b.root)  # not the checkout: its syscage/ would shadow the installed package
    wall_s = {k: med([timed(cmd, cwd=here)[0] for _ in range(b.reps(5, 2))]) for k, cmd in walls.items()}
    pre = timed([py, "-X", "importtime", "-c", "import syscage.hooks.hook, syscage.hooks.client"], cwd=here)[1]
    post = timed([py, "-X", "importtime", "-m", "syscage.hooks.hook", "poststop"],
                 input=_state(b, b.name("imp")), cwd=here)[1]
    prof = b.root / "poststop.prof"
    ran = timed([py, "-m", "cProfile", "-o", str(prof), "-m", "syscage.hooks.hook", "poststop"],
                input=_state(b, b.name("prof")), cwd=here)[1]
    if ran.returncode != 0 or not prof.exists():
        raise BenchError(f"cProfile of poststop failed: {ran.stderr.strip()[-300:]}")
    stats = pstats.Stats(str(prof))
    rows = []
    for (filename, line, func), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if filename.startswith(("<", "~")) or "importlib" in filename:
            continue  # interpreter and import machinery: the imports are itemised above
        where = "/".join(filename.rsplit("/", 2)[-2:])
        rows.append((cumulative, f"{where}:{line}({func})"))
    rows.sort(reverse=True)
    b.extras["hook_profile"] = {
        "wall_s": {k: round(v, 4) for k, v in wall_s.items()},
        "prestart_imports": _importtime(pre.stderr),
        "poststop_imports": _importtime(post.stderr),
        "poststop_cprofile_cumulative_s": {name: round(cum, 4) for cum, name in rows[:12]},
    }
    return []
