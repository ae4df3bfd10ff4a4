"""Measure a runtime's base set: the syscalls it makes between loading the seccomp filter and exec'ing
the workload. Learning without a seccomp section in the spec cuts over at the workload's exec, so these
must be added from a measurement. Writes config/base/<runtime>.json.

    sudo .venv/bin/python -m tools.measure_runtime_base [--runtime runc] [--runs 20]

Run it again when the runtime is upgraded; integration/test_runtime_base.py checks the shipped set
still covers what the installed runtime does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from integration.env import HOOK, allow_all_seccomp, learn_hooks, write_config
from syscage.bundle import make_busybox_rootfs, write_bundle
from syscage.config import load_config
from syscage.hooks.client import start_tracer

# What a Go runtime (runc is Go) may do on any thread at any moment: block, be preempted by a signal,
# grow its heap. A single measurement misses some of these by chance; an enforced container must not
# fail to start because runc happened to take a preemption signal after loading the filter.
GO_RUNTIME_ASYNC = ["futex", "getpid", "gettid", "madvise", "mmap", "munmap", "nanosleep", "rt_sigprocmask",
                    "rt_sigreturn", "sched_yield", "sigaltstack", "tgkill"]
GO_RUNTIMES = ("runc",)

OUT_DIR = Path(__file__).resolve().parent.parent / "config" / "base"


def measure(runtime: str, runs: int, root: Path) -> dict[str, list[str]]:
    """pre-exec syscalls of `runs` containers for each NoNewPrivileges value, unioned."""
    config = root / "config.toml"
    write_config(config, root)
    os.environ["SYSCAGE_CONFIG"] = str(config)
    rootfs = make_busybox_rootfs(root / "rootfs")
    # Start the tracer from here: started by a hook under `crun run`, it would be crun's descendant,
    # and `crun run` waits for all of those.
    start_tracer(load_config(), time.monotonic() + 60)
    hooks = learn_hooks(str(HOOK), [f"SYSCAGE_CONFIG={config}"])
    result: dict[str, list[str]] = {}
    for nnp in (True, False):
        key = "no_new_privileges" if nnp else "new_privileges"
        seen: set[str] = set()
        for i in range(runs):
            profile = f"measure-{key.replace('_', '-')}"
            bundle = write_bundle(root / f"b-{key}-{i}", rootfs, ["true"], hooks=hooks, seccomp=allow_all_seccomp(),
                                  annotations={"io.syscage.mode": "learn", "io.syscage.profile": profile},
                                  runtime=runtime)
            spec = json.loads((bundle / "config.json").read_text())
            spec["process"]["noNewPrivileges"] = nnp
            (bundle / "config.json").write_text(json.dumps(spec))
            subprocess.run([runtime, "--root", str(root / "state"), "run", f"m-{key}-{i}"], cwd=bundle, check=True,
                           capture_output=True, stdin=subprocess.DEVNULL)
            doc = json.loads((root / "store" / "profiles" / profile / "profile.json").read_text())
            seen.update(doc["runs"][-1]["pre_exec"])
        result[key] = sorted(seen)
    return result


def stop_own_tracer(run_dir: Path) -> None:
    """Stop the tracer this measurement started (and no other)."""
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((run_dir / "tracer.pid").read_text()), signal.SIGTERM)


def runtime_version(runtime: str) -> str:
    return subprocess.run([runtime, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtime", default="runc")
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sets = measure(args.runtime, args.runs, Path(tmp))
        stop_own_tracer(Path(tmp) / "run")
    doc = {"runtime": args.runtime, "measured_with": runtime_version(args.runtime), "runs": args.runs,
           "note": "syscalls the runtime makes after loading the seccomp filter and before exec'ing the workload",
           **sets, "asynchronous": GO_RUNTIME_ASYNC if Path(args.runtime).name in GO_RUNTIMES else []}
    out = OUT_DIR / f"{Path(args.runtime).name}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}: " + ", ".join(f"{k}={len(v)}" for k, v in sets.items()))


if __name__ == "__main__":
    main()
