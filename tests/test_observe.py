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


# -- is a run complete? (observation_from_report) -------------------------------------------------------------

def test_a_seccomp_cutover_is_exact_plus_the_go_runtimes_asynchronous_syscalls() -> None:
    from syscage.runtimebase import runtime_base

    obs = observation_from_report("c", report(), "runc 1.1.5", "runc")
    assert obs.cutover == "seccomp" and obs.complete
    base = runtime_base("runc")
    assert base is not None
    assert set(obs.runtime_base) == set(base["asynchronous"]) - set(obs.syscalls)


@pytest.mark.parametrize("nnp", [True, False])
def test_an_exec_cutover_adds_the_measured_base_set_of_the_runs_privileges(nnp: bool) -> None:
    from syscage.runtimebase import runtime_base

    obs = observation_from_report("c", report(counters={"cutover_seccomp": 0, "cutover_exec": 1},
                                              no_new_privileges=nnp), "runc", "runc")
    base = runtime_base("runc")
    assert base is not None
    wanted = set(base["no_new_privileges" if nnp else "new_privileges"]) | set(base["asynchronous"])
    assert obs.cutover == "exec" and obs.complete and obs.no_new_privileges is nnp
    assert set(obs.runtime_base) == wanted - set(obs.syscalls)


def test_an_exec_cutover_under_a_runtime_with_no_base_set_is_incomplete() -> None:
    obs = observation_from_report("c", report(counters={"cutover_seccomp": 0, "cutover_exec": 1}), "", "youki")
    assert obs.cutover == "exec" and not obs.complete
    assert "no measured runtime base set for runtime youki" in obs.problems[0]


def test_no_cutover_means_nothing_was_recorded() -> None:
    obs = observation_from_report("c", report(counters={"cutover_seccomp": 0}), "", "runc")
    assert obs.cutover == "none" and not obs.complete
    assert "never reached its cut-over point" in obs.problems[0]


@pytest.mark.parametrize(("counter", "words"), [("armed_map_full", "thread map was full"),
                                                ("nr_out_of_range", "beyond the tracer's table")])
def test_what_the_tracer_lost_makes_the_run_incomplete(counter: str, words: str) -> None:
    obs = observation_from_report("c", report(counters={counter: 3}), "", "runc")
    assert not obs.complete and obs.problems == [obs.problems[0]] and words in obs.problems[0]
    assert obs.problems[0].startswith("3 ")


def test_a_report_without_no_new_privileges_leaves_it_unknown() -> None:
    obs = observation_from_report("c", report(), "", "runc")
    assert obs.no_new_privileges is None
    assert observation_from_report("c", report(no_new_privileges=False), "", "runc").no_new_privileges is False
