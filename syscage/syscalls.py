"""Syscall numbers and names, from libseccomp's own tables for the native architecture."""

from __future__ import annotations

import functools
import platform

import pyseccomp

from syscage.errors import SyscageError

# uname machine -> OCI LinuxSeccomp architecture token
_OCI_ARCH = {
    "x86_64": "SCMP_ARCH_X86_64",
    "aarch64": "SCMP_ARCH_AARCH64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
    "i686": "SCMP_ARCH_X86",
    "armv7l": "SCMP_ARCH_ARM",
}


def native_arch() -> str:
    machine = platform.machine()
    try:
        return _OCI_ARCH[machine]
    except KeyError:
        raise SyscageError(f"unsupported architecture {machine}", "syscage knows " + ", ".join(_OCI_ARCH)) from None


@functools.cache
def syscall_name(nr: int) -> str | None:
    """Name of native syscall `nr`, or None if this libseccomp does not know it."""
    try:
        name = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, nr)
    except ValueError:
        return None
    return name.decode() if isinstance(name, bytes) else str(name)


@functools.cache
def syscall_number(name: str) -> int | None:
    try:
        nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    except (ValueError, TypeError):
        return None
    return nr if isinstance(nr, int) and nr >= 0 else None


def names_for(numbers: list[int]) -> tuple[list[str], list[int]]:
    """Split syscall numbers into (sorted known names, sorted numbers libseccomp cannot name)."""
    known, unknown = set(), set()
    for nr in numbers:
        name = syscall_name(nr)
        if name is None:
            unknown.add(nr)
        else:
            known.add(name)
    return sorted(known), sorted(unknown)
