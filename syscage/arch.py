"""Architectures as OCI seccomp names them. Standard library only: the runtime wrapper's start path uses it."""

from __future__ import annotations

import os

# uname machine -> OCI LinuxSeccomp architecture token
OCI_ARCH = {
    "x86_64": "SCMP_ARCH_X86_64",
    "aarch64": "SCMP_ARCH_AARCH64",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "s390x": "SCMP_ARCH_S390X",
    "riscv64": "SCMP_ARCH_RISCV64",
    "i686": "SCMP_ARCH_X86",
    "armv7l": "SCMP_ARCH_ARM",
}

# The other ABIs a kernel of that machine also runs (as Docker's default profile lists them). A filter that
# does not list them sends their syscalls to its bad-architecture action: the process is killed.
COMPAT_ARCHES = {
    "x86_64": ("SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_ARM",),
    "s390x": ("SCMP_ARCH_S390",),
}


def machine() -> str:
    return os.uname().machine


def native_arch() -> str | None:
    """The OCI token of this machine's native architecture, or None if syscage does not know it."""
    return OCI_ARCH.get(machine())


def all_arches() -> list[str]:
    """The native architecture and its compat ones: what a filter lists to restrict nothing of any ABI."""
    native = native_arch()
    return [native, *COMPAT_ARCHES.get(machine(), ())] if native else []
