"""Turn a tracer report into an Observation for the store, saying honestly what is missing."""

from __future__ import annotations

import os
from typing import Any

from syscage.arguments import BY_SYSCALL, DEFAULT_MAX_VALUES
from syscage.profile import Observation
from syscage.runtimebase import runtime_base
from syscage.store import utc_now
from syscage.syscalls import compat_names, names_for


def observation_from_report(container_id: str, report: dict[str, Any], runtime: str,
                            runtime_name: str, max_argument_values: int = DEFAULT_MAX_VALUES) -> Observation:
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
    apparmor_observation(obs, report, counters)
    obs.arguments = argument_observation(report, max_argument_values)
    return obs


def argument_observation(report: dict[str, Any], bound: int) -> dict[str, dict[str, Any]] | None:
    """syscall -> {"values": [...]} or {"unconditional": why} (too many values); None for a report from a
    tracer that did not learn arguments."""
    if "arguments" not in report:
        return None
    out: dict[str, dict[str, Any]] = {}
    for name, got in report["arguments"].items():
        entry = BY_SYSCALL.get(name)
        if entry is None:
            continue
        values, limit = [int(v) for v in got.get("values", [])], min(bound, entry.max_values)
        if got.get("overflow") or len(values) > limit:
            out[name] = {"unconditional": f"more than {limit} distinct values of argument {entry.index} in one run"
                         + (" (the tracer's table overflowed)" if got.get("overflow") else "")}
        else:
            out[name] = {"values": sorted(values)}
    return out


# AppArmor's names, indexed by address family number (AF_UNIX = 1 ... AF_XDP = 43) and capability number.
# AF_DECnet (12) has no AppArmor name the renderer accepts: "-" keeps the numbering.
_FAMILIES = ("unix inet ax25 ipx appletalk netrom bridge atmpvc x25 inet6 rose - netbeui security key netlink "
             "packet ash econet atmsvc rds sna irda pppox wanpipe llc ib mpls can tipc bluetooth iucv rxrpc "
             "isdn phonet ieee802154 caif alg nfc vsock kcm qipcrtr smc xdp")
FAMILY_NAMES = tuple(_FAMILIES.split())
SOCK_TYPE_NAMES = {1: "stream", 2: "dgram", 3: "raw", 4: "rdm", 5: "seqpacket", 10: "packet"}
_CAPABILITIES = (
    "chown dac_override dac_read_search fowner fsetid kill setgid setuid setpcap linux_immutable net_bind_service "
    "net_broadcast net_admin net_raw ipc_lock ipc_owner sys_module sys_rawio sys_chroot sys_ptrace sys_pacct "
    "sys_admin sys_boot sys_nice sys_resource sys_time sys_tty_config mknod lease audit_write audit_control "
    "setfcap mac_override mac_admin syslog wake_alarm block_suspend audit_read perfmon bpf checkpoint_restore")
CAPABILITY_NAMES = tuple(_CAPABILITIES.split())
# What the tracer does not learn yet; while any of it is missing, files are recorded but not trusted.
FILES_NOT_LEARNED = ("symlink resolution (AppArmor checks the resolved path), directories opened without "
                     "O_DIRECTORY, mprotect(PROT_EXEC) of a file mapping")


def apparmor_observation(obs: Observation, report: dict[str, Any], counters: dict[str, int]) -> None:
    """The run's AppArmor sections. What was lost never reaches a trusted section: the section's *_traced
    flag is false for the run (the syscall profile stays complete: seccomp does not depend on it)."""
    if "files" not in report:  # a report from a tracer that did not learn them
        return
    obs.files = {path: sorted(kinds, key="rwacdlkxm".index) for path, kinds in report["files"].items()}
    # Files are recorded but never traced as a whole yet: what is not learned (FILES_NOT_LEARNED) would be
    # denied under enforce. The renderer keeps `file,` for them.
    obs.files_traced = False
    network, lost = set(), 0
    for family, kind in report.get("sockets", []):
        name = FAMILY_NAMES[family - 1] if 1 <= family <= len(FAMILY_NAMES) else "-"
        if name == "-" or kind not in SOCK_TYPE_NAMES:
            lost += 1
            continue
        network.add(f"{name} {SOCK_TYPE_NAMES[kind]}")
    obs.network = sorted(network)
    obs.network_traced = not lost and not counters.get("sockets_out_of_range")
    if report.get("capabilities_traced"):
        caps = report.get("capabilities", [])
        obs.capabilities = sorted(CAPABILITY_NAMES[c] for c in caps if 0 <= c < len(CAPABILITY_NAMES))
        obs.capabilities_traced = len(obs.capabilities) == len(caps) and not counters.get("caps_out_of_range")


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
