"""Render a profile as an OCI LinuxSeccomp object, compiled with libseccomp before anyone uses it."""

from __future__ import annotations

import os
from typing import Any

from syscage.errors import SyscageError

# libseccomp (pyseccomp, ctypes) is imported where a filter is compiled or the native architecture is
# needed: rendering a profile's own filter, as enforce does on the start path, needs neither.


def render(syscalls: list[str], errno: int, arch: str | None = None) -> dict[str, Any]:
    """Default-deny filter allowing exactly `syscalls` on the native ABI, denied calls failing with `errno`."""
    if arch is None:
        from syscage.syscalls import native_arch

        arch = native_arch()
    names = sorted(set(syscalls))
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno,
        "architectures": [arch],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}] if names else [],
    }


def render_profile(profile: dict[str, Any], errno: int) -> dict[str, Any]:
    seccomp = render(list(profile["syscalls"]), errno, profile.get("arch"))
    validate(seccomp, profile.get("name", "?"))
    return seccomp


def validate(seccomp: dict[str, Any], profile_name: str) -> None:
    """Compile the filter with the local libseccomp; refuse names it cannot resolve."""
    import tempfile

    import pyseccomp

    from syscage.syscalls import syscall_number

    names = [n for rule in seccomp.get("syscalls", []) for n in rule.get("names", [])]
    unknown = [n for n in names if not isinstance(n, str) or syscall_number(n) is None]
    if unknown:
        raise SyscageError(f"profile {profile_name} names syscalls this libseccomp does not know: {unknown}",
                           "upgrade libseccomp, or remove them from the profile")
    errno = seccomp.get("defaultErrnoRet", 1)
    filt = pyseccomp.SyscallFilter(pyseccomp.ERRNO(errno))
    try:
        for name in names:
            filt.add_rule(pyseccomp.ALLOW, name)
        # Export the BPF program: proves the whole filter compiles, without loading it.
        with tempfile.TemporaryFile() as out:
            filt.export_bpf(out)
            if os.fstat(out.fileno()).st_size == 0:
                raise SyscageError(f"libseccomp produced an empty filter for profile {profile_name}",
                                   "report this as a bug")
    except (OSError, RuntimeError, ValueError) as exc:
        raise SyscageError(f"profile {profile_name} does not compile with libseccomp: {exc}",
                           "inspect the profile's syscalls") from None
