"""Turn a tracer report into an Observation for the store, saying honestly what is missing."""

from __future__ import annotations

import os
from typing import Any

from syscage.profile import Observation
from syscage.runtimebase import runtime_base
from syscage.store import utc_now
from syscage.syscalls import compat_names, names_for


def observation_from_report(container_id: str, report: dict[str, Any], runtime: str,
                            runtime_name: str) -> Observation:
    counters = {k: int(v) for k, v in report.get("counters", {}).items()}
    names, unresolved = names_for(report.get("syscalls", []))
    obs = Observation(container_id=container_id, started=report.get("started", ""), stopped=utc_now(),
                      cutover="none", runtime=runtime, kernel=os.uname().release, syscalls=names,
                      unresolved=unresolved, counters=counters,
                      pre_exec=names_for(report.get("pre_exec", []))[0],
                      no_new_privileges=bool(report["no_new_privileges"]) if "no_new_privileges" in report else None)
    base = runtime_base(runtime_name)
    if counters.get("cutover_seccomp"):
        obs.cutover = "seccomp"
        # Observed exactly, but a Go runtime's asynchronous syscalls (preemption signals, futex waits)
        # after the filter load vary from run to run: allow them so enforce never fails by chance.
        obs.runtime_base = sorted(set((base or {}).get("asynchronous", [])) - set(names))
    elif counters.get("cutover_exec"):
        obs.cutover = "exec"
        if base is None:
            obs.problems.append(f"no measured runtime base set for runtime {runtime_name or 'unknown'}: what it "
                                "does between the filter load and exec is missing (give the spec a seccomp "
                                "section, or learn through syscage-runtime, to record it exactly)")
        else:
            nnp = "no_new_privileges" if report.get("no_new_privileges") else "new_privileges"
            obs.runtime_base = sorted((set(base[nnp]) | set(base.get("asynchronous", []))) - set(names))
    else:
        obs.problems.append("the container never reached its cut-over point (no seccomp load or exec was seen), "
                            "nothing was recorded")
    if counters.get("armed_map_full"):
        obs.problems.append(f"{counters['armed_map_full']} threads could not be tracked: the thread map was full "
                            "(raise tracer.max_threads)")
    if counters.get("nr_out_of_range"):
        obs.problems.append(f"{counters['nr_out_of_range']} syscalls had numbers beyond the tracer's table")
    obs.problems.extend(compat_problems(counters, report.get("compat", {})))
    return obs


# Compat ABI -> (counter, how its syscalls are made), as the tracer reports them.
COMPAT_ABIS = {"i386": ("compat_i386", "int 0x80 or a 32-bit process"), "x32": ("compat_x32", "x32 ABI")}


def compat_problems(counters: dict[str, int], compat: dict[str, list[int]]) -> list[str]:
    """One problem per compat ABI the run used. Its syscalls are not learned: an OCI seccomp rule names a
    syscall for every listed architecture at once, so allowing i386 `sync` would allow it on x86_64 too, and
    the profile's filter lists the native architecture only (enforce kills a compat syscall)."""
    problems = []
    for abi, (counter, how) in COMPAT_ABIS.items():
        made = counters.get(counter, 0)
        if not made:
            continue
        names = compat_names(abi, [int(nr) for nr in compat.get(abi, [])])
        problems.append(f"{made} {abi} syscalls ({how}) were not learned: {', '.join(names) or 'names not reported'}"
                        "; the profile allows the native ABI only, so enforce kills a process making them")
    return problems


def untraced_observation(container_id: str, runtime: str, problem: str) -> Observation:
    """A run nothing was recorded for: it still goes into the profile, as incomplete."""
    return Observation(container_id=container_id, started="", stopped=utc_now(), cutover="none", runtime=runtime,
                       kernel=os.uname().release, problems=[problem])


def runtime_version(exe: str) -> str:
    """First line of `exe --version` (runc and crun both answer it)."""
    import subprocess

    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return os.path.basename(exe)
    return out.splitlines()[0].strip() if out.strip() else os.path.basename(exe)
