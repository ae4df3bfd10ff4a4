"""Render a profile as an OCI LinuxSeccomp object, compiled with libseccomp before anyone uses it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from syscage.errors import SyscageError

# libseccomp (pyseccomp, ctypes) is imported where a filter is compiled or the native architecture is
# needed: rendering a profile's own filter, as enforce does on the start path, needs neither.


def render(syscalls: list[str], errno: int, arch: str | None = None,
           conditions: dict[str, list[list[dict[str, Any]]]] | None = None) -> dict[str, Any]:
    """Default-deny filter allowing exactly `syscalls` on the native ABI, denied calls failing with `errno`;
    those in `conditions` (syscage.arguments.conditions) only with the argument values learned."""
    if arch is None:
        from syscage.syscalls import native_arch

        arch = native_arch()
    from syscage.arguments import rules

    plain, conditioned = rules(set(syscalls), conditions or {})
    names = sorted(plain)
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": errno,
        "architectures": [arch],
        "syscalls": ([{"names": names, "action": "SCMP_ACT_ALLOW"}] if names else []) + conditioned,
    }


def allowed_syscalls(profile: dict[str, Any], floor: Iterable[str] = (), coverage: str = "learned",
                     withheld: Iterable[str] = ()) -> list[str]:
    """What the profile allows: its syscalls, the always-allowed floor (seccomp.always_allow) and the kernel's
    asynchronous syscalls, which an older profile may lack; plus what seccomp.coverage adds (syscage.coverage),
    except the `withheld` ones (seccomp.never_allow)."""
    from syscage.config import KERNEL_ASYNCHRONOUS

    allowed = set(profile["syscalls"]) | set(floor) | set(KERNEL_ASYNCHRONOUS)
    if coverage != "learned":
        from syscage.coverage import additions

        allowed |= set(additions(profile, coverage)) - set(withheld)
    return sorted(allowed)


def render_profile(profile: dict[str, Any], errno: int, floor: Iterable[str] = (), coverage: str = "learned",
                   withheld: Iterable[str] = ()) -> dict[str, Any]:
    from syscage.arguments import conditions

    seccomp = render(allowed_syscalls(profile, floor, coverage, withheld), errno, profile.get("arch"),
                     conditions(profile, frozenset(floor), frozenset(withheld)))
    validate(seccomp, profile.get("name", "?"))
    return seccomp


def validate(seccomp: dict[str, Any], profile_name: str, strict_names: bool = True) -> None:
    """Compile the filter with the local libseccomp, as runc would; refuse names it cannot resolve
    (strict_names=False ignores them, as runc does with a spec's own filter)."""
    import tempfile

    names = [n for rule in seccomp.get("syscalls", []) for n in rule.get("names", [])]
    if strict_names:
        from syscage.syscalls import syscall_number

        unknown = [n for n in names if not isinstance(n, str) or syscall_number(n) is None]
        if unknown:
            raise SyscageError(f"profile {profile_name} names syscalls this libseccomp does not know: {unknown}",
                               "upgrade libseccomp, or remove them from the profile")
    try:
        filt = compile_filter(seccomp)
        # Export the BPF program: proves the whole filter compiles, without loading it.
        with tempfile.TemporaryFile() as out:
            filt.export_bpf(out)
            if os.fstat(out.fileno()).st_size == 0:
                raise SyscageError(f"libseccomp produced an empty filter for profile {profile_name}",
                                   "report this as a bug")
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise SyscageError(f"profile {profile_name} does not compile with libseccomp: {exc}",
                           "inspect the profile's syscalls") from None


_OPS = {"SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE", "SCMP_CMP_EQ": "EQ", "SCMP_CMP_GE": "GE",
        "SCMP_CMP_GT": "GT", "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}


def compile_filter(seccomp: dict[str, Any]) -> Any:
    """An OCI LinuxSeccomp object as a pyseccomp.SyscallFilter for the native ABI, built the way runc builds
    it: a rule whose action is the default is skipped, a syscall name libseccomp does not know is ignored,
    conditions on one argument index given twice become separate rules (OR), otherwise one rule (AND)."""
    import pyseccomp

    from syscage.syscalls import syscall_number

    default = _action(pyseccomp, seccomp["defaultAction"], seccomp.get("defaultErrnoRet"))
    filt = pyseccomp.SyscallFilter(default)
    for rule in seccomp.get("syscalls", []):
        action = _action(pyseccomp, rule["action"], rule.get("errnoRet"))
        if action == default:
            continue
        args = [pyseccomp.Arg(a["index"], getattr(pyseccomp, _OPS[a["op"]]), a.get("value", 0), a.get("valueTwo", 0))
                for a in rule.get("args") or []]
        indexes = [a["index"] for a in rule.get("args") or []]
        groups = [[a] for a in args] if len(set(indexes)) < len(indexes) else [args]
        for name in rule["names"]:
            if syscall_number(name) is None:
                continue
            for group in groups:
                filt.add_rule(action, name, *group)
    return filt


def _action(pyseccomp: Any, name: str, data: int | None) -> int:
    errno = 1 if data is None else data  # runc: ERRNO and TRACE without errnoRet mean EPERM
    actions = {"SCMP_ACT_KILL_PROCESS": pyseccomp.KILL_PROCESS, "SCMP_ACT_KILL_THREAD": pyseccomp.KILL_THREAD,
               "SCMP_ACT_KILL": pyseccomp.KILL, "SCMP_ACT_TRAP": pyseccomp.TRAP, "SCMP_ACT_NOTIFY": pyseccomp.NOTIFY,
               "SCMP_ACT_LOG": pyseccomp.LOG, "SCMP_ACT_ALLOW": pyseccomp.ALLOW}
    if name == "SCMP_ACT_ERRNO":
        return int(pyseccomp.ERRNO(errno))
    if name == "SCMP_ACT_TRACE":
        return int(pyseccomp.TRACE(errno))
    return int(actions[name])
