"""Compat (i386, x32) syscalls in a tracer report: named for their own ABI, never learned as native ones, and
the run is incomplete with a count and the names. And the architectures an allow-all filter must list."""

from __future__ import annotations

from typing import Any

import pytest

from syscage import arch
from syscage.hooks.daemon.observe import compat_problems, observation_from_report
from syscage.syscalls import compat_names, syscall_number


def report(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"syscalls": [syscall_number("read"), syscall_number("write"), syscall_number("execve")],
                            "pre_exec": [], "counters": {"cutover_seccomp": 1, "armed_threads": 1}}
    for key, value in extra.items():
        if key == "counters":
            base["counters"] = {**base["counters"], **value}
        else:
            base[key] = value
    return base


def test_a_report_without_compat_syscalls_is_complete() -> None:
    obs = observation_from_report("c", report(), "runc 1.1.5", "runc")
    assert obs.complete, obs.problems
    assert {"read", "write", "execve"} <= set(obs.syscalls)


def test_i386_syscalls_make_the_run_incomplete_with_count_and_names() -> None:
    obs = observation_from_report("c", report(counters={"compat_i386": 5}, compat={"i386": [36, 1]}),
                                  "runc 1.1.5", "runc")
    assert not obs.complete
    (problem,) = obs.problems
    assert problem.startswith("5 i386 syscalls (int 0x80 or a 32-bit process) were not learned: exit, sync;")
    assert "native ABI only" in problem
    # Neither under their own names nor as the native syscalls of the same numbers (getitimer, write).
    assert not {"sync", "exit", "getitimer"} & set(obs.syscalls)
    assert obs.counters["compat_i386"] == 5


def test_x32_syscalls_are_named_for_x32() -> None:
    # x32 numbers come without __X32_SYSCALL_BIT; 515 is x32 readv (native 19 is readv, x32 has none).
    (problem,) = compat_problems({"compat_x32": 2}, {"x32": [0, 515]})
    assert problem.startswith("2 x32 syscalls (x32 ABI) were not learned: read, readv;")


def test_a_count_without_names_is_still_a_problem() -> None:
    """The counter alone decides (a report from a tracer that did not pass the numbers on still says so)."""
    (problem,) = compat_problems({"compat_i386": 1}, {})
    assert problem.startswith("1 i386 syscalls") and "names not reported" in problem


def test_names_libseccomp_does_not_know_are_kept_as_numbers() -> None:
    assert compat_names("i386", [36, 36, 4000]) == ["i386#4000", "sync"]


@pytest.mark.parametrize(("machine", "expected"), [
    ("x86_64", ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]),
    ("aarch64", ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]),
    ("riscv64", ["SCMP_ARCH_RISCV64"]),
    ("sparc64", []),  # unknown: no `architectures` at all, as before
])
def test_all_arches(monkeypatch: pytest.MonkeyPatch, machine: str, expected: list[str]) -> None:
    monkeypatch.setattr(arch, "machine", lambda: machine)
    assert arch.all_arches() == expected
