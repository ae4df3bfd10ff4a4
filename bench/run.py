"""syscage benchmark suite (`make bench`). Needs root: real runc, containerd and eBPF.

Every figure is measured against a baseline taken in the same run, several times, and reported as the
value from the medians (and from the minimums). Prints a table and writes bench/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # `bench` and `integration` are not installed packages

# Run order: cheap, tracer-warm figures first; the ones that stop the tracer or need a fleet later.
NAMES = ("start-warm", "start-cold", "ready", "wrapper", "merge", "imports", "dd", "host", "memory", "containerd",
         "server", "strace")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions: a smoke test, not figures")
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(NAMES)}")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, store)")
    parser.add_argument("--editable", action="store_true",
                        help="measure the development venv's commands instead of a fresh regular install (faster "
                             "to iterate; its editable-install import hook adds ~14 ms to every syscage process)")
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    selected = [n.strip() for n in args.only.split(",") if n.strip()] or list(NAMES)
    unknown = sorted(set(selected) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    if os.geteuid() != 0:
        print("bench: needs root (real runc, containerd and eBPF): run it as root", file=sys.stderr)
        return 2
    return run(selected, args.quick, args.keep, args.output, args.editable)


def run(selected: list[str], quick: bool, keep: bool, output: Path, editable: bool = False) -> int:
    from bench import bench_server, hookcost, lifecycle, overhead
    from bench.harness import Bench, Figure, other_tracers

    with_memory = "memory" in selected
    benches: dict[str, Callable[[Bench], list[Figure]]] = {
        "start-warm": lifecycle.start_warm, "start-cold": lifecycle.start_cold, "ready": lifecycle.ready,
        "wrapper": lifecycle.wrapper, "merge": hookcost.merge, "imports": hookcost.imports,
        "dd": overhead.dd_in_container,
        "host": lambda b: overhead.fleet(b, host=True, memory=with_memory),
        "memory": lambda b: overhead.fleet(b, host=False, memory=True),
        "containerd": lifecycle.containerd, "server": bench_server.server, "strace": overhead.strace,
    }
    if "host" in selected:
        selected = [n for n in selected if n != "memory"]  # one fleet serves both
    started = time.monotonic()
    meta: dict[str, Any] = {"quick": quick, "selected": selected, "kernel": platform.release(),
                            "cpus": os.cpu_count(), "loadavg_start": os.getloadavg(),
                            "runc": _first_line(["runc", "--version"]), "containerd": _first_line(["containerd", "-v"])}
    figures: list[Figure] = []
    b = Bench(quick, editable)
    meta["install"] = "editable (development venv)" if editable else "regular install of this checkout"
    meta["other_tracers_start"] = other_tracers(b.tracer_pid())
    print(f"syscage bench ({'quick' if quick else 'full'}): {', '.join(selected)}; workdir {b.root}", flush=True)
    try:
        for name in (n for n in NAMES if n in selected):
            t0 = time.monotonic()
            try:
                got = benches[name](b)
            except Exception as exc:  # one broken benchmark must not lose the others' figures
                got = [Figure(0, name, f"{name}: FAILED", "", None, None, "-", False, {"error": str(exc)})]
            figures += got
            print(f"  {name:11} {time.monotonic() - t0:6.1f} s  " + "; ".join(_cell(f) for f in got), flush=True)
        meta["other_tracers_end"] = other_tracers(b.tracer_pid())
    finally:
        if keep:
            print(f"kept {b.root}")
        else:
            b.close()
    meta["loadavg_end"] = os.getloadavg()
    meta["duration_s"] = round(time.monotonic() - started, 1)
    output.write_text(json.dumps({"meta": meta, "figures": [asdict(f) for f in figures], **b.extras}, indent=2))
    _table(figures, b.extras, meta, output)
    return 0


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.3f}x"
    if unit == "s added":
        return f"{value:+.3f} s"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:.3f} {unit}".strip()


def _cell(f: Any) -> str:
    return f"{f.key}={_value(f.value, f.unit)}" if f.value is not None else f"{f.key}: {f.detail.get('error', '-')}"


def _table(figures: list[Any], extras: dict[str, Any], meta: dict[str, Any], output: Path) -> None:
    print()
    print(f"{'#':>2}  {'figure':78} {'median':>10} {'min':>10}  {'target':18} result")
    for f in figures:
        result = {True: "pass", False: "MISS", None: "-"}[f.ok]
        if f.value is None:
            result = "ERROR"
        print(f"{f.number:>2}  {f.title[:78]:78} {_value(f.value, f.unit):>10} {_value(f.best, f.unit):>10}  "
              f"{f.target:18} {result}")
        if "error" in f.detail:
            print(f"      error: {f.detail['error']}")
        elif f.note:
            print(f"      {f.note}")
    profile = extras.get("hook_profile")
    if profile:
        print("\nhook start-up (python side):")
        print("  wall: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in profile["wall_s"].items()))
        print(f"  imports (-X importtime): prestart {profile['prestart_imports']['total_ms']} ms, "
              f"poststop {profile['poststop_imports']['total_ms']} ms; poststop's costliest, cumulative ms:")
        for name, ms in list(profile["poststop_imports"]["top_cumulative_ms"].items())[:10]:
            print(f"    {ms:7.1f}  {name}")
        print("  poststop cProfile (outside the import machinery), cumulative s:")
        for name, cum in list(profile["poststop_cprofile_cumulative_s"].items())[:10]:
            print(f"    {cum:7.3f}  {name}")
    others = sorted(set(meta.get("other_tracers_start", [])) | set(meta.get("other_tracers_end", [])))
    print(f"\ntotal {meta['duration_s']} s on {meta['cpus']} cpus; loadavg {meta['loadavg_start'][0]:.2f} -> "
          f"{meta['loadavg_end'][0]:.2f}; other syscage tracers on the host: {others or 'none'}; wrote {output}")


def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False).stdout
    except OSError:
        return ""
    return out.splitlines()[0] if out else ""


if __name__ == "__main__":
    sys.exit(main())
