"""Intersect a profile with the container's own seccomp filter: syscage never makes a filter looser.

The container may load only one filter, so the profile cannot simply be stacked on the spec's own filter
F. compose() writes the one filter R the kernel would give the stack of both: for syscall s and
arguments a, R(s, a) = F(s, a) when the profile allows s, else the stricter of F(s, a) and the profile's
deny action (ERRNO for enforce, LOG for complain). F's rules keep their argument conditions and errno.

Everything here is pure Python (no libseccomp): it runs on the container's start path. The semantics it
relies on are those of runc (and crun) over libseccomp, checked in tests/test_compose.py: a rule whose
action equals the default action is skipped; for one syscall, an unconditional rule overrides conditional
ones; ERRNO and TRACE without errnoRet mean EPERM.
"""

from __future__ import annotations

import copy
import errno as errno_codes
from collections.abc import Iterable
from typing import Any, NamedTuple

from syscage.errors import SyscageError

# Kernel precedence, strictest first (seccomp_run_filters keeps the lowest SECCOMP_RET_ACTION).
RANK = {
    "SCMP_ACT_KILL_PROCESS": 0,
    "SCMP_ACT_KILL_THREAD": 1,
    "SCMP_ACT_KILL": 1,
    "SCMP_ACT_TRAP": 2,
    "SCMP_ACT_ERRNO": 3,
    "SCMP_ACT_NOTIFY": 4,
    "SCMP_ACT_TRACE": 5,
    "SCMP_ACT_LOG": 6,
    "SCMP_ACT_ALLOW": 7,
}
WITH_DATA = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")  # their errnoRet is part of the action
# Top-level keys of F that say how the filter is loaded, not what it allows: kept as they are.
KEPT_KEYS = ("flags", "listenerPath", "listenerMetadata")


class Action(NamedTuple):
    name: str
    data: int | None = None

    @property
    def rank(self) -> int:
        return RANK[self.name]

    def key(self) -> tuple[str, int | None]:
        """What runc compares: KILL is KILL_THREAD, a missing errnoRet is EPERM."""
        name = "SCMP_ACT_KILL_THREAD" if self.name == "SCMP_ACT_KILL" else self.name
        if name in WITH_DATA:
            return name, errno_codes.EPERM if self.data is None else self.data
        return name, None


DENY_LOG = Action("SCMP_ACT_LOG")


def deny_errno(errno: int) -> Action:
    return Action("SCMP_ACT_ERRNO", errno)


class CannotCompose(SyscageError):
    """The intersection cannot be written as one filter, or the own filter is malformed."""


def stricter(own: Action, deny: Action) -> Action:
    """The action the kernel would take from a stack of both filters (a tie keeps the own filter's errno)."""
    return own if own.rank <= deny.rank else deny


def is_trivial(own: dict[str, Any] | None) -> bool:
    """No filter at all, or one that allows everything and sets nothing else (learning's allow-all)."""
    if own is None:
        return True
    if set(own) - {"defaultAction", "architectures", "syscalls"} or own.get("defaultAction") != "SCMP_ACT_ALLOW":
        return False
    return all(isinstance(r, dict) and r.get("action") == "SCMP_ACT_ALLOW" for r in own.get("syscalls") or [])


def plain(allowed: Iterable[str], deny: Action, arch: str) -> dict[str, Any]:
    """The profile alone: default `deny`, `allowed` allowed, on the native ABI."""
    names = sorted(set(allowed))
    out: dict[str, Any] = {"defaultAction": deny.name}
    if deny.name in WITH_DATA and deny.data is not None:
        out["defaultErrnoRet"] = deny.data
    out["architectures"] = [arch]
    out["syscalls"] = [{"names": names, "action": "SCMP_ACT_ALLOW"}] if names else []
    return out


def compose(own: dict[str, Any] | None, allowed: Iterable[str], deny: Action, arch: str) -> dict[str, Any]:
    """The filter R described above; CannotCompose when R cannot be one filter (see _check_expressible)."""
    allowed = set(allowed)
    if own is None or is_trivial(own):
        return plain(allowed, deny, arch)
    default = _action(own.get("defaultAction"), own.get("defaultErrnoRet"), "defaultAction")
    rules = [r for r in _rules(own) if _rule_action(r).key() != default.key()]  # runc skips these
    out: dict[str, Any] = {}
    extra: list[dict[str, Any]] = []
    if default.rank <= deny.rank:
        # F's default already denies at least as strictly: it stays, with its errno.
        result_default = default
        out["defaultAction"] = own["defaultAction"]
        if "defaultErrnoRet" in own:
            out["defaultErrnoRet"] = own["defaultErrnoRet"]
    else:
        # A deny-list filter (e.g. default ALLOW): the result's default is the profile's deny, so what F
        # left to its default must be written out for the allowed syscalls.
        result_default = deny
        out["defaultAction"] = deny.name
        if deny.name in WITH_DATA and deny.data is not None:
            out["defaultErrnoRet"] = deny.data
        ruled, extra = _check_expressible(rules, allowed, default, own["defaultAction"])
        implicit = sorted(allowed - ruled)
        if implicit:
            extra.append(_rule(implicit, default))
    out["architectures"] = [arch]
    for key in KEPT_KEYS:
        if key in own:
            out[key] = copy.deepcopy(own[key])
    composed: list[dict[str, Any]] = []
    for rule in rules:
        names = rule["names"]
        kept = [n for n in names if n in allowed]
        denied = [n for n in names if n not in allowed]
        if kept:  # the rule as it is, for these names (copied without its long name list)
            composed.append({**{k: copy.deepcopy(v) for k, v in rule.items() if k != "names"}, "names": kept})
        action = stricter(_rule_action(rule), deny)
        if denied and action.key() != result_default.key():
            composed.append(_rule(denied, action, rule.get("args")))
    out["syscalls"] = [r for r in composed + extra if _rule_action(r).key() != result_default.key()]
    return out


def _check_expressible(rules: list[dict[str, Any]], allowed: set[str], default: Action,
                       default_name: str) -> tuple[set[str], list[dict[str, Any]]]:
    """The allowed syscalls F has rules for, and the rules that keep F's answer for them once the default
    changes. An allowed syscall with only conditional rules needs "F's default unless the condition", and an
    unconditional rule overrides the conditional ones for the same syscall (libseccomp). It can be written
    when it has one such rule whose conditions can each be negated: "F's default if not c" for each of its
    conditions c. Otherwise CannotCompose."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for rule in rules:
        for name in rule["names"]:
            if name in allowed:
                by_name.setdefault(name, []).append(rule)
    extra: list[dict[str, Any]] = []
    for name in sorted(by_name):
        if any(not r.get("args") for r in by_name[name]):
            continue  # an unconditional rule decides, as in F
        negated = _negated(by_name[name])
        if negated is None:
            raise CannotCompose(
                f"the spec's own seccomp filter (defaultAction {default_name}) restricts {name} only under "
                f"argument conditions that cannot be combined exactly with a profile that allows {name}",
                "give the spec a default-deny filter (defaultAction SCMP_ACT_ERRNO with an allow list), "
                f"or make its rule for {name} unconditional")
        extra.extend(_rule([name], default, [condition]) for condition in negated)
    return set(by_name), extra


_NEGATED_OPS = {"SCMP_CMP_EQ": "SCMP_CMP_NE", "SCMP_CMP_NE": "SCMP_CMP_EQ", "SCMP_CMP_LT": "SCMP_CMP_GE",
                "SCMP_CMP_GE": "SCMP_CMP_LT", "SCMP_CMP_LE": "SCMP_CMP_GT", "SCMP_CMP_GT": "SCMP_CMP_LE"}


def _negated(rules: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The negation of each condition of the one rule in `rules` (its conditions are ANDed), or None when
    there is more than one rule or a condition has no negation libseccomp can express."""
    if len(rules) != 1:
        return None
    args = rules[0]["args"]
    if not all(isinstance(a, dict) for a in args) or len({a.get("index") for a in args}) < len(args):
        return None  # runc ORs conditions on one argument: their negation would be an AND on it
    out = []
    for arg in args:
        op, value, two = arg.get("op"), arg.get("value", 0), arg.get("valueTwo", 0)
        if not (isinstance(value, int) and isinstance(two, int)):
            return None
        if op in _NEGATED_OPS:
            out.append({**arg, "op": _NEGATED_OPS[op]})
        elif op == "SCMP_CMP_MASKED_EQ" and value > 0 and value & (value - 1) == 0 and two in (0, value):
            # (x & bit) == 0 and (x & bit) == bit are each other's negation; a wider mask has no single one.
            out.append({**arg, "valueTwo": value - two})
        else:
            return None
    return out


def _rules(own: dict[str, Any]) -> list[dict[str, Any]]:
    rules = own.get("syscalls") or []
    if not isinstance(rules, list):
        raise CannotCompose("the spec's own linux.seccomp.syscalls is not a list", "fix the spec's seccomp section")
    for rule in rules:
        if not (isinstance(rule, dict) and isinstance(rule.get("names"), list)
                and all(isinstance(n, str) for n in rule["names"])
                and isinstance(rule.get("args") or [], list)):
            raise CannotCompose(f"the spec's own linux.seccomp has a malformed rule: {str(rule)[:120]}",
                                "fix the spec's seccomp section")
        _rule_action(rule)
    return rules


def _rule_action(rule: dict[str, Any]) -> Action:
    return _action(rule.get("action"), rule.get("errnoRet"), f"action of the rule for {rule.get('names')}")


def _action(name: object, data: object, what: str) -> Action:
    if not isinstance(name, str) or name not in RANK:
        raise CannotCompose(f"the spec's own linux.seccomp has an unknown {what}: {name!r}",
                            "fix the spec's seccomp section")
    if data is not None and (not isinstance(data, int) or isinstance(data, bool) or data < 0):
        raise CannotCompose(f"the spec's own linux.seccomp has an invalid errno for {what}: {data!r}",
                            "fix the spec's seccomp section")
    return Action(name, data if name in WITH_DATA else None)


def _rule(names: list[str], action: Action, args: object = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"names": names, "action": action.name}
    if action.name in WITH_DATA and action.data is not None:
        rule["errnoRet"] = action.data
    if args:
        rule["args"] = copy.deepcopy(args)
    return rule
