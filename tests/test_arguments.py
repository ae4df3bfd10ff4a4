"""syscage.arguments: the table of learned arguments, how runs merge their values into a profile, and the
conditions a profile renders (compiled with libseccomp; what the kernel does with them is in
integration/test_arguments.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from syscage.arguments import ARGUMENTS, BY_SYSCALL, NAMESPACE_BITS, conditions, describe, value_name
from syscage.errors import SyscageError
from syscage.hooks.daemon.observe import argument_observation
from syscage.profile import Observation, check_profile, merge, new_profile
from syscage.seccomp import render, validate
from syscage.syscalls import syscall_number

CLONE_NEWUSER = 0x10000000


def obs(cid: str, syscalls: list[str], arguments: dict[str, dict[str, Any]] | None,
        runtime_base: list[str] | None = None) -> Observation:
    return Observation(container_id=cid, started="2026-01-01T00:00:00Z", stopped=f"2026-01-01T00:00:0{cid[-1]}Z",
                       cutover="seccomp", syscalls=syscalls, runtime_base=runtime_base or [], arguments=arguments)


def learned(*runs: Observation) -> dict[str, Any]:
    profile = new_profile("p", "SCMP_ARCH_X86_64", "2026-01-01T00:00:00Z")
    for run in runs:
        profile = merge(profile, run, run.stopped)
    return check_profile(profile, "p")


def test_every_entry_is_a_known_syscall_with_a_reason() -> None:
    assert len(BY_SYSCALL) == len(ARGUMENTS)
    for entry in ARGUMENTS:
        assert syscall_number(entry.syscall) is not None and entry.why and 0 <= entry.index < 6
        assert entry.kind in ("value", "flags") and (entry.kind == "value") == (entry.mask == 0)


def test_values_are_unioned_and_keep_their_first_run() -> None:
    profile = learned(obs("run1", ["socket", "clone"], {"socket": {"values": [1]}, "clone": {"values": [0]}}),
                      obs("run2", ["socket"], {"socket": {"values": [1, 2]}}))
    socket = profile["arguments"]["socket"]
    assert {v: w["first_run"] for v, w in socket["values"].items()} == {"1": "run1", "2": "run2"}
    assert conditions(profile) == {
        "socket": [[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}], [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]],
        "clone": [[{"index": 0, "value": NAMESPACE_BITS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]]}


@pytest.mark.parametrize(("second", "why"), [
    (obs("run2", ["socket"], None), "run run2 did not record its arguments"),
    (obs("run2", ["socket"], {"socket": {"unconditional": "more than 16 distinct values of argument 0"}}),
     "run run2: more than 16"),
    (obs("run2", [], {}, runtime_base=["socket"]), "added from the runtime's base set by run run2"),
    (obs("run2", ["socket"], {}), "run run2 did not record"),
    (obs("run2", ["socket"], {"socket": {"values": []}}), "made it but no value was recorded"),
])
def test_a_run_that_allows_it_without_values_makes_it_unconditional_for_good(second: Observation, why: str) -> None:
    profile = learned(obs("run1", ["socket"], {"socket": {"values": [1]}}), second,
                      obs("run3", ["socket"], {"socket": {"values": [2]}}))
    assert why in profile["arguments"]["socket"]["unconditional"]
    assert conditions(profile) == {}
    assert "socket: any value (" + "".join(profile["arguments"]["socket"]["unconditional"]) in "\n".join(
        describe(profile))


def test_a_profile_learned_before_arguments_stays_unconditional() -> None:
    old = learned(obs("run1", ["socket"], None))
    del old["arguments"]  # as schema 1 profiles before this section was filled
    assert check_profile(copy.deepcopy(old), "p") and conditions(old) == {}
    profile = merge(old, obs("run2", ["socket"], {"socket": {"values": [1]}}), "2026-01-01T00:00:03Z")
    assert "socket" not in profile["arguments"] and conditions(profile) == {}
    assert describe(old) == ["argument conditions: none learned (every syscall allowed with any argument)"]


def test_clone3_values_count_as_clone_and_the_filter_answers_clone3_with_enosys() -> None:
    profile = learned(obs("run1", ["clone3"], {"clone": {"values": [0]}}))
    rendered = render(["clone3", "read"], 1, "SCMP_ARCH_X86_64", conditions(profile))
    assert rendered["syscalls"] == [
        {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": NAMESPACE_BITS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    validate(rendered, "p")


def test_a_flag_word_with_every_masked_value_is_unconditional_and_the_floor_too() -> None:
    profile = learned(obs("run1", ["mmap", "personality"], {"mmap": {"values": [0, 4]},
                                                            "personality": {"values": [0]}}))
    assert set(conditions(profile)) == {"personality"}
    assert conditions(profile, frozenset({"personality"})) == {}
    assert "every value of the mask was used" in "\n".join(describe(profile))


def test_the_bound_on_distinct_values() -> None:
    report = {"arguments": {"socket": {"values": [1, 2, 10], "overflow": False},
                            "clone": {"values": [0], "overflow": True}, "not_in_table": {"values": [1]}}}
    got = argument_observation(report, 2)
    assert got == {"socket": {"unconditional": "more than 2 distinct values of argument 0 in one run"},
                   "clone": {"unconditional": "more than 2 distinct values of argument 0 in one run "
                                              "(the tracer's table overflowed)"}}
    assert argument_observation(report, 16)["socket"] == {"values": [1, 2, 10]}
    assert argument_observation({}, 16) is None


def test_show_names_the_values_and_what_docker_forbids() -> None:
    profile = learned(obs("run1", ["socket", "clone", "personality"],
                          {"socket": {"values": [1, 2, 40]}, "clone": {"values": [0, CLONE_NEWUSER]},
                           "personality": {"values": [0]}}))
    text = "\n".join(describe(profile))
    assert "socket arg0: AF_UNIX, AF_INET, AF_VSOCK [Docker's default forbids it; first used by run run1]" in text
    assert "clone arg0 & 0x7e020000: none of CLONE_NEWNS" in text
    assert "CLONE_NEWUSER [Docker's default forbids it" in text
    assert "personality arg0: PER_LINUX" in text and "clone3: answered with ENOSYS" in text
    assert value_name("unshare", CLONE_NEWUSER | 0x20000) == "CLONE_NEWNS|CLONE_NEWUSER"


@pytest.mark.parametrize("section", [[], {"socket": []}, {"socket": {"unconditional": 1}},
                                     {"socket": {"values": {"AF_UNIX": {"first_run": "x"}}}},
                                     {"socket": {"values": {"1": {}}}}])
def test_a_malformed_arguments_section_is_refused_in_one_line(section: object) -> None:
    profile = learned(obs("run1", ["socket"], {"socket": {"values": [1]}}))
    profile["arguments"] = section
    with pytest.raises(SyscageError, match="'arguments'"):
        check_profile(profile, "p")


def test_a_withheld_clone_is_not_allowed_back_for_clone3() -> None:
    profile = learned(obs("run1", ["clone3"], {"clone": {"values": [0]}}))
    assert conditions(profile, withheld=frozenset({"clone"})) == {}
    rendered = render(["clone3"], 1, "SCMP_ARCH_X86_64", conditions(profile, withheld=frozenset({"clone"})))
    assert rendered["syscalls"] == [{"names": ["clone3"], "action": "SCMP_ACT_ALLOW"}]
