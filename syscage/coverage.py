"""What enforce allows beyond the learned syscalls (seccomp.coverage), and why each addition is there.

  learned          what the runs saw (and the floor): nothing added
  learned+related  plus the syscalls that are the same operation by another entry point (syscage.related);
                   when the profile has a static set (below), only those the binaries' code can make
  learned+static   plus every syscall in the profile's static set: what the binaries that ran during
                   learning, and the libraries they loaded, can make (syscage.static_syscalls, computed at
                   record time) — plus the related ones, as above

Never added: the dangerous syscalls (DANGEROUS, and whatever Docker's default profile does not allow
outright). Standard library only: enforce computes this on a container's start path.
"""

from __future__ import annotations

from typing import Any

COVERAGES = ("learned", "learned+related", "learned+static")

# Never allowed because a binary *could* make them: only a run that really needed one adds it.
DANGEROUS = frozenset({
    "keyctl", "add_key", "request_key", "bpf", "userfaultfd", "perf_event_open", "unshare", "setns", "mount",
    "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsmount", "fsconfig", "fspick",
    "mount_setattr", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "ptrace",
    "process_vm_readv", "process_vm_writev", "reboot", "swapon", "swapoff", "acct", "settimeofday",
    "clock_settime", "clock_adjtime", "adjtimex", "iopl", "ioperm", "lookup_dcookie", "open_by_handle_at",
    "quotactl", "syslog", "vhangup", "chroot", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "fanotify_init", "kcmp", "move_pages", "personality", "sethostname", "setdomainname", "uselib", "ustat",
    "sysfs", "_sysctl", "nfsservctl", "name_to_handle_at", "clone3", "vm86", "vm86old", "modify_ldt",
})


def never_added(name: str) -> bool:
    from syscage.dockerdefault import ALLOWED

    return name in DANGEROUS or name not in ALLOWED


def static_set(profile: dict[str, Any]) -> dict[str, list[str]] | None:
    """The profile's static set (syscall -> where it came from), None when none was recorded."""
    static = profile.get("static")
    if not isinstance(static, dict) or not isinstance(static.get("syscalls"), dict) or not static["syscalls"]:
        return None
    return static["syscalls"]


def additions(profile: dict[str, Any], coverage: str) -> dict[str, str]:
    """syscall -> why, added to what `profile` learned under `coverage`."""
    if coverage == "learned":
        return {}
    from syscage.related import related_to

    learned = set(profile["syscalls"])
    static = static_set(profile)
    out = {name: why for name, why in related_to(learned).items()
           if static is None or name in static}
    if coverage == "learned+static" and static is not None:
        for name, where in sorted(static.items()):
            if name not in learned and name not in out:
                out[name] = "the binaries can make it: " + ", ".join(where[:3]) + (" ..." if len(where) > 3 else "")
    return {name: why for name, why in out.items() if not never_added(name)}
