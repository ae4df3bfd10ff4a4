"""Syscall numbers and names, from libseccomp's own tables: the native architecture's, and the compat ABIs'
(i386, x32) for naming what a run made through them."""

from __future__ import annotations

import functools

import pyseccomp

from syscage import arch
from syscage.errors import SyscageError

X32_SYSCALL_BIT = 0x40000000
# Compat ABI (as the tracer names it) -> libseccomp architecture and the offset of its syscall numbers in
# libseccomp's table (x32 numbers carry __X32_SYSCALL_BIT there; the tracer reports them without it).
_COMPAT_ABI = {"i386": (pyseccomp.Arch.X86, 0), "x32": (pyseccomp.Arch.X32, X32_SYSCALL_BIT)}


def native_arch() -> str:
    token = arch.native_arch()
    if token is None:
        raise SyscageError(f"unsupported architecture {arch.machine()}", "syscage knows " + ", ".join(arch.OCI_ARCH))
    return token


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


@functools.cache
def compat_syscall_name(abi: str, nr: int) -> str:
    """Name of syscall `nr` of a compat ABI ("i386", "x32"), or "ABI#nr" if this libseccomp cannot name it."""
    libseccomp_arch, offset = _COMPAT_ABI[abi]
    try:
        name = pyseccomp.resolve_syscall(libseccomp_arch, offset + nr)
    except ValueError:
        return f"{abi}#{nr}"
    return name.decode() if isinstance(name, bytes) else str(name)


def compat_names(abi: str, numbers: list[int]) -> list[str]:
    """Sorted names of compat syscall numbers (unknown ones as "ABI#nr")."""
    return sorted({compat_syscall_name(abi, nr) for nr in numbers})
