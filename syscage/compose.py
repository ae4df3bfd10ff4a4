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


Conditions = dict[str, list[list[dict[str, Any]]]]  # syscage.arguments.conditions: syscall -> ORed alternatives


def plain(allowed: Iterable[str], deny: Action, arch: str, conds: Conditions | None = None) -> dict[str, Any]:
    """The profile alone: default `deny`, `allowed` allowed (with the argument conditions `conds`)."""
    from syscage.arguments import rules as argument_rules

    unconditional, conditioned = argument_rules(set(allowed), conds or {})
    names = sorted(unconditional)
    out: dict[str, Any] = {"defaultAction": deny.name}
    if deny.name in WITH_DATA and deny.data is not None:
        out["defaultErrnoRet"] = deny.data
    out["architectures"] = [arch]
    out["syscalls"] = ([{"names": names, "action": "SCMP_ACT_ALLOW"}] if names else []) + conditioned
    return out


def compose(own: dict[str, Any] | None, allowed: Iterable[str], deny: Action, arch: str,
            conds: Conditions | None = None) -> dict[str, Any]:
    """The filter R described above; CannotCompose when R cannot be one filter (see _check_expressible).
    conds: the profile's argument conditions; for such a syscall s, the profile allows s only when one of
    its alternatives holds (see _conditioned)."""
    allowed = set(allowed)
    if own is None or is_trivial(own):
        return plain(allowed, deny, arch, conds)
    default = _action(own.get("defaultAction"), own.get("defaultErrnoRet"), "defaultAction")
    rules = [r for r in _rules(own) if _rule_action(r).key() != default.key()]  # runc skips these
    conds = _live(conds or {}, allowed)
    if conds:
        rules = _conditioned(rules, conds, deny, default.rank > deny.rank)
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
        ruled, extra = _check_expressible(rules, allowed - set(conds), default, own["defaultAction"])
        ruled |= _ruled(rules, set(conds))
        implicit = sorted(allowed - ruled)
        for name in [n for n in implicit if n in conds]:  # F's default, under the profile's conditions
            extra.extend(_conditioned_rule(name, {"action": default.name, **_errno(default)}, [], conds[name]))
        if "clone3" in implicit and "clone" in conds:
            extra.append(_enosys())
        implicit = [n for n in implicit if n not in conds and not (n == "clone3" and "clone" in conds)]
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


# -- argument conditions (syscage.arguments) -------------------------------------------------------------
# For a conditioned syscall s, R(s, a) = F(s, a) when one of the profile's alternatives c holds, else the
# stricter of F(s, a) and the deny action. Each rule of F for s looser than the deny action becomes one rule
# per alternative, its conditions ANDed with c's (below, _and: runc ORs conditions on one index, so two on
# the same index are merged into one when libseccomp can express it, else CannotCompose). clone3 (whose
# flags a filter cannot read) is answered with ENOSYS wherever F would let it through, so libc uses clone.


def _live(conds: Conditions, allowed: set[str]) -> Conditions:
    return {n: c for n, c in conds.items() if n in allowed or (n == "clone" and "clone3" in allowed)}


def _ruled(rules: list[dict[str, Any]], names: set[str]) -> set[str]:
    return {n for r in rules for n in r["names"] if n in names}


def _errno(action: Action) -> dict[str, Any]:
    return {"errnoRet": action.data} if action.name in WITH_DATA and action.data is not None else {}


def _enosys() -> dict[str, Any]:
    from syscage.arguments import clone3_rule

    return clone3_rule()


def _conditioned(rules: list[dict[str, Any]], conds: Conditions, deny: Action, deny_list: bool
                 ) -> list[dict[str, Any]]:
    """F's rules with those for the conditioned syscalls (and clone3) rewritten, one rule per name."""
    def decided(name: str) -> bool:  # an unconditional rule of F denies it at least as strictly: kept as it is
        return any(name in r["names"] and not r.get("args") and _rule_action(r).rank <= deny.rank for r in rules)

    targets = sorted({n for r in rules for n in r["names"]
                      if (n in conds or (n == "clone3" and "clone" in conds)) and not decided(n)})
    out = [{**r, "names": [n for n in r["names"] if n not in targets]} for r in rules
           if any(n not in targets for n in r["names"])]
    for name in targets:
        mine = [r for r in rules if name in r["names"]]
        unconditional = [r for r in mine if not r.get("args")]
        if unconditional:
            mine = unconditional[:1]  # it decides for every argument (libseccomp)
        elif deny_list and name != "clone3":
            out.extend(_disjoint(name, mine, conds[name], deny))
            continue
        elif deny_list or any(_rule_action(r).rank <= deny.rank for r in mine):
            raise _inexpressible(name)
        for rule in mine:
            if _rule_action(rule).rank <= deny.rank:  # denies at least as strictly as the profile: kept
                out.append({**rule, "names": [name]})
            elif name == "clone3":
                out.append(_enosys())
                break
            else:
                base = {k: v for k, v in rule.items() if k not in ("names", "args")}
                out.extend(_conditioned_rule(name, base, rule.get("args") or [], conds[name]))
    return out


def _inexpressible(name: str) -> CannotCompose:
    return CannotCompose(
        f"the spec's own seccomp filter has only argument-conditional rules for {name}, which cannot be "
        f"combined exactly with the profile's learned arguments of {name}",
        f"give the spec a default-deny filter with an allow rule for {name}, or make its rule unconditional")


def _disjoint(name: str, rules: list[dict[str, Any]], alternatives: list[list[dict[str, Any]]], deny: Action
              ) -> list[dict[str, Any]]:
    """A default-allowing F whose rules for `name` are all conditional: R is F's rules as they are (each denies
    at least as strictly as the profile), plus "allow if c" for each learned alternative c. Exact only when
    no c overlaps one of F's conditions (which of two matching conditional rules wins is libseccomp's
    choice): otherwise CannotCompose."""
    kept = []
    for alternative in alternatives:
        implied = False
        for rule in rules:
            if _rule_action(rule).rank > deny.rank:
                raise _inexpressible(name)
            for group in _groups(rule.get("args") or []):
                if _and_all(name, group, alternative) is None:
                    continue  # disjoint: F's rule never meets this value
                if not all(any(_implies(c, a) for c in alternative) for a in group):
                    raise _inexpressible(name)
                implied = True  # every value of c meets F's rule, which then decides, as in F
        if not implied:
            kept.append(alternative)
    return [*({**r, "names": [name]} for r in rules),
            *({"names": [name], "action": "SCMP_ACT_ALLOW", "args": list(a)} for a in kept)]


def _implies(cond: dict[str, Any], other: dict[str, Any]) -> bool:
    """Whether every argument meeting the profile's `cond` meets F's `other`."""
    if cond["index"] != other.get("index"):
        return False
    op, value, two = other.get("op"), other.get("value", 0), other.get("valueTwo", 0)
    if cond["op"] == "SCMP_CMP_EQ":
        return _holds(op, value, two, cond["value"], "?")
    return op == "SCMP_CMP_MASKED_EQ" and not value & ~cond["value"] and cond["valueTwo"] & value == two


def _groups(args: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """A rule's conditions as runc reads them: ANDed, or each alone when one index is given twice (ORed)."""
    indexes = [a.get("index") for a in args]
    return [[a] for a in args] if len(set(indexes)) < len(indexes) else [args]


def _and_all(name: str, group: list[dict[str, Any]], alternative: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    combined: list[dict[str, Any]] | None = list(group)
    for cond in alternative:
        combined = _and(name, combined, cond) if combined is not None else None
    return combined


def _conditioned_rule(name: str, base: dict[str, Any], args: list[dict[str, Any]],
                      alternatives: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """F's rule (action `base`, conditions `args`) for `name`, restricted to each alternative."""
    out = []
    for group in _groups(args):
        for alternative in alternatives:
            combined = _and_all(name, group, alternative)
            if combined is not None:
                out.append({**base, "names": [name], **({"args": combined} if combined else {})})
    return out


_MASK = (1 << 64) - 1


def _and(name: str, args: list[dict[str, Any]], cond: dict[str, Any]) -> list[dict[str, Any]] | None:
    """args AND cond as one list with at most one condition per index; None: they never both hold."""
    same = [a for a in args if a.get("index") == cond["index"]]
    if not same:
        return [*args, cond]
    other, = same
    rest = [a for a in args if a is not other]
    op, value, two = other.get("op"), other.get("value", 0), other.get("valueTwo", 0)
    if not (isinstance(value, int) and isinstance(two, int)):
        raise CannotCompose(f"the spec's own seccomp filter has a malformed condition for {name}",
                            "fix the spec's seccomp section")
    if cond["op"] == "SCMP_CMP_EQ":
        # The profile's value is one number: whether F's condition holds for it decides.
        return [*rest, cond] if _holds(op, value, two, cond["value"], name) else None
    mask, want = cond["value"], cond["valueTwo"]
    if op == "SCMP_CMP_EQ":
        return [*rest, other] if value & mask == want else None
    if op == "SCMP_CMP_MASKED_EQ":
        both = value & mask
        if two & both != want & both or two & ~value & _MASK:
            return None  # they disagree on a shared bit (or F's can never hold)
        return [*rest, {**cond, "value": value | mask, "valueTwo": two | want}]
    raise CannotCompose(f"the spec's own seccomp filter conditions {name}'s argument {cond['index']} with {op}, "
                        "which cannot be combined with the profile's learned flags",
                        f"give the spec's rule for {name} an SCMP_CMP_EQ or SCMP_CMP_MASKED_EQ condition, or none")


def _holds(op: object, value: int, two: int, x: int, name: str) -> bool:
    tests = {"SCMP_CMP_EQ": x == value, "SCMP_CMP_NE": x != value, "SCMP_CMP_LT": x < value,
             "SCMP_CMP_LE": x <= value, "SCMP_CMP_GT": x > value, "SCMP_CMP_GE": x >= value,
             "SCMP_CMP_MASKED_EQ": x & value == two}
    if op not in tests:
        raise CannotCompose(f"the spec's own seccomp filter has an unknown condition {op!r} for {name}",
                            "fix the spec's seccomp section")
    return tests[str(op)]
