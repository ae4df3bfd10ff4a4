"""syscage.compose: a profile intersected with the spec's own filter, never looser than it.

The ground truth is the kernel: loading the spec's filter and the profile's as two stacked filters gives
exactly the intersection. The composed single filter must answer every probe the same way."""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Any

import pytest

from syscage.compose import DENY_LOG, CannotCompose, compose, deny_errno, is_trivial, plain
from syscage.errors import SyscageError
from syscage.seccomp import compile_filter, render, validate
from syscage.syscalls import native_arch, syscall_number

ARCH = native_arch()
CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
EPERM = deny_errno(errno.EPERM)


def rule(names: list[str], action: str = "SCMP_ACT_ALLOW", **extra: Any) -> dict[str, Any]:
    return {"names": names, "action": action, **extra}


NEWUSER_CLEAR = [{"index": 0, "value": CLONE_NEWUSER, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
NEWUSER_SET = [{"index": 0, "value": CLONE_NEWUSER, "valueTwo": CLONE_NEWUSER, "op": "SCMP_CMP_MASKED_EQ"}]


# --- the shape of the result, branch by branch ---------------------------------------------------------

def test_no_filter_or_allow_all_gives_the_plain_profile() -> None:
    assert compose(None, ["write", "read"], EPERM, ARCH) == render(["read", "write"], errno.EPERM, ARCH)
    assert compose({"defaultAction": "SCMP_ACT_ALLOW"}, ["read"], EPERM, ARCH) == render(["read"], 1, ARCH)
    assert is_trivial({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
                       "syscalls": [rule(["read"])]})
    assert not is_trivial({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"]})
    assert not is_trivial({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(["mkdir"], "SCMP_ACT_ERRNO")]})
    assert compose(None, ["read"], DENY_LOG, ARCH) == {
        "defaultAction": "SCMP_ACT_LOG", "architectures": [ARCH], "syscalls": [rule(["read"])]}


def test_default_deny_filter_keeps_its_rules_conditions_and_errno() -> None:
    """containerd's RuntimeDefault shape: default ERRNO, an allow list, clone only without CLONE_NEWUSER."""
    own = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
           "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
           "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"], "listenerPath": "/run/l.sock", "listenerMetadata": "m",
           "syscalls": [rule(["read", "write", "mkdir"]),
                        rule(["clone", "unshare"], args=NEWUSER_CLEAR),
                        rule(["ptrace"], "SCMP_ACT_KILL_PROCESS"),
                        rule(["umask", "sync"], "SCMP_ACT_ERRNO", errnoRet=13),
                        rule(["getpid"], "SCMP_ACT_ERRNO", errnoRet=38)]}  # = the default: runc skips it
    out = compose(own, ["read", "write", "clone", "ptrace", "umask", "exit_group"], EPERM, ARCH)
    assert out == {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "architectures": [ARCH],
        "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"], "listenerPath": "/run/l.sock", "listenerMetadata": "m",
        "syscalls": [
            rule(["read", "write"]),
            rule(["mkdir"], "SCMP_ACT_ERRNO", errnoRet=1),  # allowed by the spec, not by the profile
            rule(["clone"], args=NEWUSER_CLEAR),  # the condition is kept
            rule(["unshare"], "SCMP_ACT_ERRNO", errnoRet=1, args=NEWUSER_CLEAR),
            rule(["ptrace"], "SCMP_ACT_KILL_PROCESS"),  # stricter than the profile: kept
            rule(["umask"], "SCMP_ACT_ERRNO", errnoRet=13),
            rule(["sync"], "SCMP_ACT_ERRNO", errnoRet=13),  # as strict as the profile: the spec's errno stays
        ]}
    # exit_group is allowed by the profile, not by the spec: the spec's default denies it.
    assert own["syscalls"][0]["names"] == ["read", "write", "mkdir"]  # the input is not changed


def test_a_rule_denied_with_the_defaults_errno_is_dropped() -> None:
    own = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [rule(["read", "mkdir"])]}
    assert compose(own, ["read"], EPERM, ARCH)["syscalls"] == [rule(["read"])]  # mkdir: the default, EPERM


def test_complain_logs_only_what_the_spec_allows() -> None:
    own = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [rule(["read", "mkdir"]), rule(["umask"], "SCMP_ACT_LOG")]}
    out = compose(own, ["read"], DENY_LOG, ARCH)
    assert out["defaultAction"] == "SCMP_ACT_ERRNO" and "defaultErrnoRet" not in out
    assert out["syscalls"] == [rule(["read"]), rule(["mkdir"], "SCMP_ACT_LOG"), rule(["umask"], "SCMP_ACT_LOG")]


def test_deny_list_filter_gets_the_profiles_default_and_explicit_rules() -> None:
    own = {"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
           "syscalls": [rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errnoRet=13),
                        rule(["unshare"], "SCMP_ACT_ERRNO", args=NEWUSER_SET),
                        rule(["clone"], args=NEWUSER_CLEAR),  # = the default: redundant, not a condition
                        rule(["getuid"], "SCMP_ACT_LOG"),
                        rule(["ptrace"], "SCMP_ACT_KILL")]}
    out = compose(own, ["read", "mkdir", "clone", "getuid"], EPERM, ARCH)
    assert out == {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": [ARCH],
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "syscalls": [
            rule(["mkdir"], "SCMP_ACT_ERRNO", errnoRet=13),  # the spec denies it: still denied, its errno
            rule(["mkdirat"], "SCMP_ACT_ERRNO", errnoRet=13),
            # unshare, not allowed: ERRNO under the condition is the default now; nothing left
            rule(["getuid"], "SCMP_ACT_LOG"),
            rule(["ptrace"], "SCMP_ACT_KILL"),
            rule(["clone", "read"]),  # left to the spec's default (ALLOW): written out
        ]}


def test_deny_list_filter_under_complain() -> None:
    own = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(["mkdir"], "SCMP_ACT_ERRNO"),
                                                          rule(["unshare"], "SCMP_ACT_ERRNO", args=NEWUSER_SET)]}
    out = compose(own, ["read"], DENY_LOG, ARCH)
    assert out == {"defaultAction": "SCMP_ACT_LOG", "architectures": [ARCH],
                   "syscalls": [rule(["mkdir"], "SCMP_ACT_ERRNO"),
                                rule(["unshare"], "SCMP_ACT_ERRNO", args=NEWUSER_SET),  # stricter than LOG: kept
                                rule(["read"])]}


NEWUSER_NEWNS = CLONE_NEWUSER | CLONE_NEWNS
BOTH_SET = [{"index": 0, "value": NEWUSER_NEWNS, "valueTwo": NEWUSER_NEWNS, "op": "SCMP_CMP_MASKED_EQ"}]


def test_a_negatable_condition_on_an_allowed_syscall_of_a_deny_list_filter() -> None:
    """ALLOW by default, unshare denied with CLONE_NEWUSER, the profile allows unshare: "allow unshare
    unless CLONE_NEWUSER" is written as the negated condition (an unconditional allow would override it)."""
    own = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        rule(["unshare"], "SCMP_ACT_ERRNO", errnoRet=13, args=NEWUSER_SET),
        rule(["personality"], "SCMP_ACT_ERRNO", args=[{"index": 0, "value": 8, "op": "SCMP_CMP_GE"},
                                                      {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}])]}
    out = compose(own, ["read", "unshare", "personality"], EPERM, ARCH)
    assert out["syscalls"] == [
        rule(["unshare"], "SCMP_ACT_ERRNO", errnoRet=13, args=NEWUSER_SET),
        # personality's own rule is dropped: its action is the result's default now
        rule(["personality"], args=[{"index": 0, "value": 8, "op": "SCMP_CMP_LT"}]),
        rule(["personality"], args=[{"index": 1, "value": 0, "op": "SCMP_CMP_NE"}]),
        rule(["unshare"], args=NEWUSER_CLEAR),
        rule(["read"])]


@pytest.mark.parametrize("rules", [
    [rule(["unshare"], "SCMP_ACT_ERRNO", args=BOTH_SET)],  # a two-bit mask: "not both" is no single condition
    [rule(["unshare"], "SCMP_ACT_ERRNO", args=NEWUSER_SET), rule(["unshare"], "SCMP_ACT_TRAP", args=BOTH_SET)],
    [rule(["unshare"], "SCMP_ACT_ERRNO", args=[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
                                               {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}])],  # runc: OR
], ids=["wide-mask", "two-rules", "or-on-one-argument"])
def test_an_inexpressible_condition_on_an_allowed_syscall_is_refused(rules: list[dict[str, Any]]) -> None:
    own = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}
    with pytest.raises(CannotCompose, match="restricts unshare only under argument conditions") as caught:
        compose(own, ["read", "unshare"], EPERM, ARCH)
    assert "\n" not in str(caught.value)
    assert compose(own, ["read"], EPERM, ARCH)  # the profile does not allow unshare: nothing to keep
    # With an unconditional rule beside them, the unconditional one decides (libseccomp): expressible.
    own["syscalls"] = [*rules, rule(["unshare"], "SCMP_ACT_ERRNO", errnoRet=13)]
    assert rule(["unshare"], "SCMP_ACT_ERRNO", errnoRet=13) in compose(own, ["unshare"], EPERM, ARCH)["syscalls"]


@pytest.mark.parametrize("own", [
    {"defaultAction": "SCMP_ACT_BOGUS"},
    {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1},
    {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": {"names": ["read"]}},
    {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]},
    {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "ALLOW"}]},
])
def test_malformed_own_filter_is_one_clear_error(own: dict[str, Any]) -> None:
    with pytest.raises(CannotCompose, match=r"the spec's own linux\.seccomp"):
        compose(own, ["read"], EPERM, ARCH)


def test_plain_is_render() -> None:
    assert plain(["b", "a"], deny_errno(38), ARCH) == render(["a", "b"], 38, ARCH)


# --- the kernel as judge ---------------------------------------------------------------------------------

# What the child needs between loading the filters and reporting (always allowed on both sides).
INFRA = ["write", "exit_group", "exit", "brk", "mmap", "munmap", "rt_sigreturn", "futex", "rt_sigprocmask",
         "madvise", "mprotect", "seccomp", "prctl"]
PROBES: list[tuple[str, int]] = [("getppid", 0), ("getuid", 0), ("getgid", 0), ("sched_yield", 0), ("umask", 0o22),
                                 ("personality", 0xFFFFFFFF), ("personality", 0), ("unshare", 0),
                                 ("unshare", CLONE_NEWUSER), ("unshare", CLONE_NEWNS | CLONE_NEWUSER),
                                 ("chdir", 0)]
PROBE_NAMES = sorted({p[0] for p in PROBES})

FILTERS: dict[str, dict[str, Any]] = {
    "runtime-default": {
        "defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
        "syscalls": [rule([*INFRA, "getppid", "getuid", "sched_yield", "personality"]),
                     rule(["unshare"], args=NEWUSER_CLEAR),
                     rule(["umask"], "SCMP_ACT_ERRNO", errnoRet=13)]},
    "deny-list": {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [rule(["personality"], "SCMP_ACT_ERRNO", errnoRet=38), rule(["getuid"], "SCMP_ACT_LOG"),
                     rule(["unshare"], args=NEWUSER_CLEAR), rule(["chdir"], "SCMP_ACT_ERRNO", errnoRet=20)]},
    "deny-list-conditional": {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [rule(["unshare"], "SCMP_ACT_ERRNO", errnoRet=13, args=NEWUSER_SET),
                     rule(["umask"], "SCMP_ACT_ERRNO", args=[{"index": 0, "value": 0o100, "op": "SCMP_CMP_LT"}]),
                     rule(["personality"], "SCMP_ACT_ERRNO", errnoRet=22,
                          args=[{"index": 0, "value": 0x100, "op": "SCMP_CMP_GE"},
                                {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]),
                     rule(["getuid"], "SCMP_ACT_LOG", args=[{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}])]},
    "deny-list-wide-mask": {
        "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(["unshare"], "SCMP_ACT_ERRNO", args=BOTH_SET)]},
    "log-default": {
        "defaultAction": "SCMP_ACT_LOG",
        "syscalls": [rule(["getgid"], "SCMP_ACT_ERRNO", errnoRet=22), rule(["getppid"])]},
    "or-conditions": {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
        "syscalls": [rule(INFRA), rule(["personality"], args=[
            {"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]),
            rule(["unshare", "getuid"], "SCMP_ACT_ERRNO", errnoRet=1)]},
}
ALLOWED = {"all": PROBE_NAMES, "some": ["getppid", "unshare", "sched_yield", "personality"], "none": []}
DENIES = {"eperm": EPERM, "einval": deny_errno(errno.EINVAL), "log": DENY_LOG}


def _outcomes(filters: list[dict[str, Any]]) -> list[str]:
    """Load the filters (first one first) in a forked child, make every probe, report their results (no
    filter here kills or traps, so one child answers them all)."""
    libc = ctypes.CDLL(None, use_errno=True)
    calls = [(ctypes.c_long(syscall_number(name) or -1), ctypes.c_long(arg)) for name, arg in PROBES]
    zero = ctypes.c_long(0)  # the arguments after the first: defined, for conditions on them
    compiled = [compile_filter(f) for f in filters]
    results = (ctypes.c_long * (2 * len(calls)))()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            for filt in compiled:
                filt.load()
            for i, (nr, arg) in enumerate(calls):
                ret = libc.syscall(nr, arg, zero, zero)
                results[2 * i], results[2 * i + 1] = ret, ctypes.get_errno() if ret < 0 else 0
            os.write(write_fd, bytes(results))
        finally:
            os._exit(0)
    os.close(write_fd)
    raw = os.read(read_fd, 8 * len(results))
    os.close(read_fd)
    os.waitpid(pid, 0)
    assert len(raw) == 8 * len(results), "the probing child died"
    values = list((ctypes.c_long * len(results)).from_buffer_copy(raw))
    return [f"{name}({arg:#x}) = {values[2 * i]} errno {values[2 * i + 1]}" for i, (name, arg) in enumerate(PROBES)]


@pytest.mark.parametrize("deny", sorted(DENIES))
@pytest.mark.parametrize("allowed", sorted(ALLOWED))
@pytest.mark.parametrize("own", sorted(FILTERS))
def test_composed_filter_answers_like_the_stacked_pair(own: str, allowed: str, deny: str) -> None:
    spec_filter, names, action = FILTERS[own], [*INFRA, *ALLOWED[allowed]], DENIES[deny]
    try:
        composed = compose(spec_filter, names, action, ARCH)
    except CannotCompose:
        assert own == "deny-list-wide-mask" and "unshare" in names
        return
    validate(composed, "t", strict_names=False)  # compiles with libseccomp, as runc builds it
    profile = plain(names, action, ARCH)
    # The spec's filter loaded last: on a tie (two errnos) the kernel takes the newest, as compose does.
    assert _outcomes([composed]) == _outcomes([profile, spec_filter]), composed


def test_every_action_compiles() -> None:
    actions = ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
               "SCMP_ACT_TRACE", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"]
    rules = [rule([n], a) for n, a in zip(PROBE_NAMES, actions, strict=False)]
    own = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}
    for deny in DENIES.values():
        validate(compose(own, ["read"], deny, ARCH), "t", strict_names=False)
    with pytest.raises(SyscageError, match="does not know"):
        validate(compose(own, ["read", "not_a_syscall"], EPERM, ARCH), "t")


# --- the profile's own argument conditions (syscage.arguments) -----------------------------------------

NO_NAMESPACE = {"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}
CONDS = {"unshare": [[NO_NAMESPACE]], "personality": [[{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}],
                                                      [{"index": 0, "value": 0xFFFFFFFF, "op": "SCMP_CMP_EQ"}]]}
# A default-allowing filter whose rules for a conditioned syscall are all conditional composes only when no
# learned value meets its conditions (which of two matching conditional rules wins is libseccomp's choice):
# personality(0xffffffff) meets "personality >= 0x100 (and arg1 == 0)" of deny-list-conditional: refused.


# unshare also learned with CLONE_NEWUSER (a value some filters' conditions imply, others exclude).
CONDS_NEWUSER = {"unshare": [[NO_NAMESPACE], [{**NO_NAMESPACE, "valueTwo": CLONE_NEWUSER}]],
                 "personality": [[{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]]}


@pytest.mark.parametrize("conds", ["plain", "newuser"])
@pytest.mark.parametrize("deny", sorted(DENIES))
@pytest.mark.parametrize("allowed", sorted(ALLOWED))
@pytest.mark.parametrize("own", sorted(FILTERS))
def test_composed_filter_with_conditions_answers_like_the_stacked_pair(own: str, allowed: str, deny: str,
                                                                      conds: str) -> None:
    spec_filter, names, action = FILTERS[own], [*INFRA, *ALLOWED[allowed]], DENIES[deny]
    learned = CONDS if conds == "plain" else CONDS_NEWUSER
    try:
        composed = compose(spec_filter, names, action, ARCH, learned)
    except CannotCompose:
        # deny-list-conditional: personality(0xffffffff) meets its "arg0 >= 0x100 and arg1 == 0" in part;
        # deny-list-wide-mask: unshare(CLONE_NEWUSER) meets "NEWUSER and NEWNS both set" in part.
        assert (own, conds) in (("deny-list-conditional", "plain"), ("deny-list-wide-mask", "newuser"))
        assert "unshare" in names
        return
    validate(composed, "t", strict_names=False)
    profile = plain(names, action, ARCH, learned)
    got, stacked = _outcomes([composed]), _outcomes([profile, spec_filter])
    # One known difference, never looser: a default-deny F that allowed a value the profile did not learn
    # answers it with F's default (its errno) instead of the profile's deny action (writing the latter would
    # need the negation of the learned values).
    default_errno = spec_filter.get("defaultErrnoRet", errno.EPERM)
    for probe, (mine, theirs) in zip(PROBES, zip(got, stacked, strict=True), strict=True):
        if mine != theirs:
            assert spec_filter["defaultAction"] == "SCMP_ACT_ERRNO" and probe[0] in learned, composed
            assert mine.endswith(f"= -1 errno {default_errno}"), (mine, theirs)


def test_both_sides_conditioning_clone_are_combined_into_one_masked_condition() -> None:
    own = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        rule(["clone"], args=NEWUSER_CLEAR), rule(["clone3"], "SCMP_ACT_ALLOW"),
        rule(["socket"], args=[{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}])]}
    conds = {"clone": [[{"index": 0, "value": 0x7E020000, "valueTwo": v, "op": "SCMP_CMP_MASKED_EQ"}]
                       for v in (0, CLONE_NEWNS)],
             "socket": [[{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}] for v in (1, 40)]}
    composed = compose(own, ["clone", "clone3", "socket"], EPERM, ARCH, conds)
    assert composed["syscalls"] == [
        rule(["clone"], args=[{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]),
        rule(["clone"], args=[{"index": 0, "value": 0x7E020000, "valueTwo": CLONE_NEWNS, "op": "SCMP_CMP_MASKED_EQ"}]),
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        rule(["socket"], args=[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}])]  # 40: the spec's filter denies it
    validate(composed, "t")


def test_a_condition_on_the_same_argument_that_cannot_be_combined_is_refused() -> None:
    own = {"defaultAction": "SCMP_ACT_ERRNO",
           "syscalls": [rule(["clone"], args=[{"index": 0, "value": 5, "op": "SCMP_CMP_GT"}])]}
    conds = {"clone": [[NO_NAMESPACE]]}
    with pytest.raises(CannotCompose, match="clone's argument 0 with SCMP_CMP_GT"):
        compose(own, ["clone"], EPERM, ARCH, conds)


def test_a_learned_value_the_own_deny_rule_always_meets_is_left_to_that_rule() -> None:
    own = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule(["unshare"], "SCMP_ACT_ERRNO", errnoRet=13,
                                                                 args=NEWUSER_SET)]}
    composed = compose(own, ["unshare"], EPERM, ARCH, CONDS_NEWUSER)
    assert composed["syscalls"] == [rule(["unshare"], "SCMP_ACT_ERRNO", errnoRet=13, args=NEWUSER_SET),
                                    rule(["unshare"], args=[NO_NAMESPACE])]
