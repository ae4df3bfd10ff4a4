from __future__ import annotations

import copy

import pytest

from syscage.errors import SyscageError
from syscage.profile import Observation, accept, check_profile, merge, new_profile


def obs(cid: str, syscalls: list[str], stopped: str, **kw: object) -> Observation:
    return Observation(container_id=cid, started=stopped, stopped=stopped, cutover="seccomp", syscalls=syscalls,
                       **kw)  # type: ignore[arg-type]


def test_merge_is_a_union_with_provenance() -> None:
    p0 = new_profile("web", "SCMP_ARCH_X86_64", "2026-01-01T00:00:00Z")
    p1 = merge(p0, obs("c1", ["read", "write"], "2026-01-02T00:00:00Z"), "2026-01-02T00:00:00Z")
    p2 = merge(p1, obs("c2", ["write", "mkdir"], "2026-01-03T00:00:00Z", runtime_base=["futex"]),
               "2026-01-03T00:00:00Z")
    assert p0["syscalls"] == {} and p0["runs"] == []  # inputs untouched
    assert set(p2["syscalls"]) == {"read", "write", "mkdir", "futex", "restart_syscall"}
    assert p2["syscalls"]["write"] == {"first_seen": "2026-01-02T00:00:00Z", "last_seen": "2026-01-03T00:00:00Z",
                                       "runs": 2, "seen_runs": 2, "sources": ["observed"]}
    assert p2["syscalls"]["futex"]["sources"] == ["runtime-base"]
    assert [r["container_id"] for r in p2["runs"]] == ["c1", "c2"]
    assert p2["complete"] and p2["revision"] == 2


def test_incomplete_run_marks_profile_until_accepted() -> None:
    p = new_profile("web", "SCMP_ARCH_X86_64", "t0")
    p = merge(p, obs("c1", ["read"], "t1", problems=["tracer died"]), "t1")
    assert not p["complete"] and "tracer died" in p["incomplete_reasons"][0]
    p = merge(p, obs("c2", ["read"], "t2"), "t2")
    assert not p["complete"]  # a later good run does not vouch for what the bad one missed
    accepted = accept(p, "t3")
    assert accepted["complete"] and accepted["accepted"][0]["reasons"]


def test_unresolved_numbers_make_profile_incomplete() -> None:
    p = merge(new_profile("x", "SCMP_ARCH_X86_64", "t"), obs("c", ["read"], "t", unresolved=[470]), "t")
    assert not p["complete"] and "470" in p["unresolved_syscalls"]


def test_check_profile_rejects_corruption() -> None:
    good = new_profile("web", "SCMP_ARCH_X86_64", "t")
    assert check_profile(copy.deepcopy(good), "web")
    for broken in ({"kind": "other"}, {**good, "name": "evil"}, {**good, "syscalls": []},
                   {**good, "schema": "1"}, {**good, "syscalls": {"read": 1}},
                   {**good, "syscalls": {"read": {"runs": 1}}}, {**good, "incomplete_reasons": [3]},
                   {**good, "runs": ["x"]}):
        with pytest.raises(SyscageError, match="corrupt"):
            check_profile(broken, "web")
    with pytest.raises(SyscageError, match="newer"):
        check_profile({**good, "schema": 99}, "web")


def test_run_records_are_bounded_and_the_total_kept() -> None:
    from syscage.profile import MAX_RUN_RECORDS

    profile = new_profile("web", "SCMP_ARCH_X86_64", "2026-01-01T00:00:00Z")
    runs = MAX_RUN_RECORDS + 50
    for i in range(runs):
        profile = merge(profile, obs(f"c{i}", ["read"], f"2026-01-02T00:00:{i % 60:02d}Z"), "2026-01-02T00:00:00Z")
    assert len(profile["runs"]) == MAX_RUN_RECORDS and profile["runs"][-1]["container_id"] == f"c{runs - 1}"
    assert profile["runs"][0]["container_id"] == f"c{runs - MAX_RUN_RECORDS}"  # the oldest records went
    assert profile["runs_total"] == runs and profile["syscalls"]["read"]["runs"] == runs
    assert check_profile(profile, "web") is profile
    with pytest.raises(SyscageError, match="runs_total"):
        check_profile({**profile, "runs_total": "many"}, "web")


def test_merge_leaves_its_input_untouched_at_any_depth() -> None:
    p1 = merge(new_profile("web", "SCMP_ARCH_X86_64", "t0"), obs("c1", ["read"], "t1", problems=["lost"]), "t1")
    before = copy.deepcopy(p1)
    p2 = merge(p1, obs("c2", ["read", "write"], "t2", unresolved=[999], problems=["lost again"]), "t2")
    assert p1 == before  # the shared parts were not written through
    assert p2["syscalls"]["read"]["runs"] == 2 and p1["syscalls"]["read"]["runs"] == 1
    assert len(p2["incomplete_reasons"]) > len(p1["incomplete_reasons"])


def test_floor_is_merged_with_its_own_source() -> None:
    """A run cut short by SIGKILL never calls exit_group: the floor keeps it allowed all the same."""
    p = merge(new_profile("web", "SCMP_ARCH_X86_64", "t0"), obs("c1", ["read", "exit"], "t1", runtime_base=["futex"]),
              "t1", floor=("exit", "exit_group", "futex"))
    assert p["syscalls"]["exit_group"]["sources"] == ["floor"]
    assert p["syscalls"]["exit"]["sources"] == ["observed"]  # seen: observed, not floor
    assert p["syscalls"]["futex"]["sources"] == ["runtime-base"]
    assert set(merge(p, obs("c2", ["read"], "t2"), "t2")["syscalls"]) == {"read", "exit", "exit_group", "futex",
                                                                           "restart_syscall"}


def test_kernel_asynchronous_syscalls_are_in_every_profile_whatever_the_floor() -> None:
    """restart_syscall is made by the kernel for a sleep resumed after a stop signal: in every profile even when
    the operator's seccomp.always_allow leaves it out."""
    from syscage.seccomp import allowed_syscalls

    p = merge(new_profile("web", "SCMP_ARCH_X86_64", "t0"), obs("c1", ["read"], "t1"), "t1", floor=("exit_group",))
    assert p["syscalls"]["restart_syscall"]["sources"] == ["kernel"]
    older = new_profile("old", "SCMP_ARCH_X86_64", "t0")
    older["syscalls"] = {"read": p["syscalls"]["read"]}  # learned before the kernel set existed
    assert "restart_syscall" in allowed_syscalls(older, ())
    seen = merge(p, obs("c2", ["restart_syscall"], "t2"), "t2")
    assert seen["syscalls"]["restart_syscall"]["sources"] == ["kernel", "observed"]


def test_run_records_its_no_new_privileges() -> None:
    p = new_profile("web", "SCMP_ARCH_X86_64", "t0")
    p = merge(p, obs("c1", ["read"], "t1", no_new_privileges=True), "t1")
    p = merge(p, obs("c2", ["read"], "t2"), "t2")
    assert [r["no_new_privileges"] for r in p["runs"]] == [True, None]


def _runs(profile: dict, workloads: list[list[str]], start: int = 0, complete: bool = True) -> dict:
    for i, syscalls in enumerate(workloads, start):
        t0, t1 = f"2026-01-01T00:{i:02d}:00Z", f"2026-01-01T00:{i:02d}:30Z"  # 30 s of traced time per run
        run = Observation(container_id=f"c{i}", started=t0, stopped=t1, cutover="seccomp", syscalls=syscalls,
                          problems=[] if complete else ["lost"])
        profile = merge(profile, run, t1, floor=("exit_group",))
        check_profile(profile, profile["name"])
    return profile


def test_convergence_counts_runs_and_time_since_anything_new() -> None:
    from syscage.convergence import Rule, state

    rule = Rule(min_runs=3, min_minutes=1.0, chance_share=0.5)
    p = _runs(new_profile("web", "SCMP_ARCH_X86_64", "t"), [["read", "write", "mkdir"]])
    first = state(p, rule)
    assert not first.converged and first.runs_since_new == 0 and first.chance == []  # one run: nothing to compare
    p = _runs(p, [["read", "write"]] * 2, start=1)
    assert state(p, rule).runs_since_new == 2 and not state(p, rule).converged
    p = _runs(p, [["read", "write"]], start=3)
    now = state(p, rule)
    assert now.converged and now.runs_since_new == 3 and now.seconds_since_new == 90.0
    assert now.chance == [("mkdir", 1)]  # seen in 1 of 4 runs; the floor never is chance-dependent
    assert not state(p, rule._replace(min_minutes=2.0)).converged  # 90 s traced: not the 2 min the rule asks
    p = _runs(p, [["read", "write", "poll"]], start=4)  # something new starts the count again
    assert state(p, rule).runs_since_new == 0 and p["convergence"]["new_in_last"] == ["poll"]
    p = _runs(p, [["read"]], start=5, complete=False)  # an incomplete run with nothing new does not count
    assert state(p, rule).runs_since_new == 0
    p = _runs(p, [["read", "exit_group"]], start=6)  # the floor, observed this time: allowed all along, not new
    assert state(p, rule).runs_since_new == 1


def test_an_older_profile_without_the_counts_loads_and_is_worked_out_from_its_runs() -> None:
    from syscage.convergence import Rule, state

    p = _runs(new_profile("web", "SCMP_ARCH_X86_64", "t"), [["read", "mkdir"], ["read"], ["read"]])
    old = copy.deepcopy(p)
    del old["convergence"]
    for entry in old["syscalls"].values():
        del entry["seen_runs"]
    check_profile(old, "web")
    now = state(old, Rule(min_runs=2))
    assert now.converged and now.runs_since_new == 2 and now.seconds_since_new == 60.0
    assert now.chance == [("mkdir", 1)]  # an old entry counts the runs since it was first seen
    merged = _runs(old, [["read"]], start=3)
    assert merged["convergence"]["runs_since_new"] == 3 and merged["syscalls"]["read"]["seen_runs"] == 4
    with pytest.raises(SyscageError, match="corrupt"):
        check_profile({**p, "convergence": {"runs_since_new": "3"}}, "web")


def test_a_malformed_static_section_is_corrupt() -> None:
    good = new_profile("web", "SCMP_ARCH_X86_64", "t")
    check_profile({**good, "static": {"syscalls": {"read": ["/bin/x"]}, "binaries": {}}}, "web")
    for static in ([], {"syscalls": []}, {"syscalls": {"read": "x"}}, {"syscalls": {"read": [1]}},
                   {"syscalls": {}, "binaries": 3}):
        with pytest.raises(SyscageError, match="'static' is malformed"):
            check_profile({**good, "static": static}, "web")
    base = {"syscalls": {}, "binaries": {}}
    check_profile({**good, "static": {**base, "runs_analysed": 2, "unresolved": {"/x": "why"}, "absent": ["/y"],
                                      "programs": ["/bin/sh"], "unresolved_total": 1, "paths_lost": 0}}, "web")
    for bad in ({"runs_analysed": "2"}, {"unresolved": ["/x"]}, {"unresolved": {"/x": 1}}, {"absent": "/y"},
                {"programs": [1]}, {"paths_lost": -1}, {"unresolved_total": True}):
        with pytest.raises(SyscageError, match="malformed analysis counts"):
            check_profile({**good, "static": {**base, **bad}}, "web")
