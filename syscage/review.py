"""Review profiles: what a profile or an OCI seccomp file allows, the difference of two, a CI gate, and lint.

A policy is what a filter lets the native ABI of this machine do, by syscall: allowed outright, allowed
only under conditions (argument conditions; Docker's `includes`/`excludes` on capabilities or kernel
version), or not at all. Docker's extensions are read as Docker reads them for a container with Docker's
default capabilities: a rule for another architecture does not apply, a rule that needs a capability
Docker does not grant by default is conditional.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syscage.errors import SyscageError

ALLOWING = frozenset({"SCMP_ACT_ALLOW", "SCMP_ACT_LOG"})
# OCI architecture token -> the name Docker's `includes.arches` uses
# Docker's default capability set (moby oci/caps/defaults.go): a rule that includes only these always applies
# to a default Docker container, one that excludes any of them never does.
DOCKER_DEFAULT_CAPS = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE"})
_DOCKER_ARCH = {"SCMP_ARCH_X86_64": "amd64", "SCMP_ARCH_X86": "x86", "SCMP_ARCH_X32": "x32",
                "SCMP_ARCH_AARCH64": "arm64", "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_PPC64LE": "ppc64le",
                "SCMP_ARCH_S390X": "s390x", "SCMP_ARCH_RISCV64": "riscv64"}


@dataclass
class Policy:
    """What a filter allows on the native ABI. `conditional`: syscall -> why it is allowed only sometimes.
    `default_allow`: a deny-list filter: everything not listed in `denied`/`conditional` is allowed."""

    label: str
    allowed: set[str] = field(default_factory=set)
    conditional: dict[str, str] = field(default_factory=dict)
    default_allow: bool = False
    denied: set[str] = field(default_factory=set)

    def status(self, name: str) -> str:
        """"allowed", "conditional" or "denied"."""
        if name in self.conditional:
            return "conditional"
        if name in self.allowed or (self.default_allow and name not in self.denied):
            return "allowed"
        return "denied"

    def names(self) -> set[str]:
        return self.allowed | set(self.conditional) | self.denied


def _kernel_at_least(release: str, wanted: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        out = []
        for p in v.split("-")[0].split(".")[:2]:
            digits = "".join(c for c in p if c.isdigit())
            out.append(int(digits or 0))
        return tuple(out)
    return parts(release) >= parts(wanted)


def _conditions(rule: dict[str, Any], docker_arch: str, kernel: str) -> list[str] | None:
    """Why the rule applies only sometimes ([] = always), or None if it never applies on this architecture."""
    why: list[str] = []
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("arches") and docker_arch not in inc["arches"]:
        return None
    if exc.get("arches") and docker_arch in exc["arches"]:
        return None
    if inc.get("minKernel") and not _kernel_at_least(kernel, str(inc["minKernel"])):
        why.append(f"kernel >= {inc['minKernel']}")
    if exc.get("caps") and DOCKER_DEFAULT_CAPS.intersection(exc["caps"]):
        return None
    if inc.get("caps") and not DOCKER_DEFAULT_CAPS.issuperset(inc["caps"]):
        why.append("with " + "+".join(inc["caps"]))
    if exc.get("caps"):
        why.append("without " + "+".join(exc["caps"]))
    if rule.get("args"):
        why.append("argument conditions: " + " or ".join(
            f"arg{a.get('index')} {str(a.get('op', '')).removeprefix('SCMP_CMP_')} {a.get('value')}"
            for a in rule["args"]))
    return why


def oci_policy(doc: dict[str, Any], label: str, arch: str, kernel: str | None = None) -> Policy:
    """The policy of an OCI LinuxSeccomp object (or a Docker seccomp profile) on architecture `arch`."""
    if not isinstance(doc, dict) or not isinstance(doc.get("defaultAction"), str):
        raise SyscageError(f"{label} is not a seccomp profile (no defaultAction)",
                           "give a profile name, a profile.json, or an OCI/Docker seccomp JSON file")
    archs = doc.get("architectures") or [a.get("architecture") for a in doc.get("archMap") or []]
    if archs and arch not in archs:
        raise SyscageError(f"{label} does not cover this machine's architecture {arch} (it lists {archs})",
                           "compare filters made for this architecture")
    kernel = kernel or os.uname().release
    docker_arch = _DOCKER_ARCH.get(arch, arch)
    policy = Policy(label, default_allow=doc["defaultAction"] in ALLOWING)
    always: set[str] = set()  # unconditional rules matching the policy's sense (allow, or deny for a deny list)
    sometimes: dict[str, list[str]] = {}
    for rule in doc.get("syscalls") or []:
        if not isinstance(rule, dict) or not isinstance(rule.get("names"), list):
            raise SyscageError(f"{label}: a rule has no list of names", "fix the file")
        # In a default-deny filter only allowing rules matter; in a default-allow one only denying rules.
        if (rule.get("action") in ALLOWING) == policy.default_allow:
            continue
        why = _conditions(rule, docker_arch, kernel)
        if why is None:
            continue
        for name in rule["names"]:
            if not why:
                always.add(name)
            else:
                sometimes.setdefault(name, []).append(", ".join(why))
    for name, whys in sometimes.items():
        if name not in always:
            policy.conditional[name] = "; or ".join(sorted(set(whys))).replace("; or argument conditions:", " or")
    if policy.default_allow:
        policy.denied = always
        # A conditional deny leaves the syscall allowed under the opposite conditions.
        policy.conditional = {n: "not when " + w for n, w in policy.conditional.items()}
    else:
        policy.allowed = always
    return policy


def profile_policy(profile: dict[str, Any], label: str, floor: tuple[str, ...] = (), store: Any = None) -> Policy:
    """What enforce allows for the profile: with the store's seccomp.coverage additions (less never_allow)."""
    from syscage.arguments import conditions, rules
    from syscage.seccomp import allowed_syscalls

    coverage, withheld = getattr(store, "coverage", "learned"), getattr(store, "never_allow", ())
    allowed = set(allowed_syscalls(profile, floor, coverage, withheld))
    # Syscalls allowed for learned argument values only (syscage.arguments), described as oci_policy would
    # describe the same rules in the profile's seccomp.json.
    unconditional, conditioned = rules(allowed, conditions(profile, frozenset(floor), frozenset(withheld)))
    policy = Policy(label, allowed=unconditional)
    whys: dict[str, list[str]] = {}
    for rule in conditioned:
        if rule["action"] in ALLOWING:
            whys.setdefault(rule["names"][0], []).append(", ".join(_conditions(rule, "", "") or []))
    for name, why in whys.items():
        policy.conditional[name] = "; or ".join(sorted(set(why))).replace("; or argument conditions:", " or")
    return policy


def load_policy(spec: str, store: Any, floor: tuple[str, ...], arch: str) -> Policy:
    """A profile name in the store, a profile.json, or an OCI/Docker seccomp JSON file."""
    from syscage.profile_schema import KIND

    path = Path(spec)
    if "/" in spec or spec.endswith(".json") or (path.exists() and not _is_name(spec)):
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise SyscageError(f"{spec}: no such file", "give an existing file or a profile name") from None
        except (OSError, ValueError) as exc:
            raise SyscageError(f"{spec}: not readable JSON ({exc})", "give a seccomp JSON file") from None
        if isinstance(doc, dict) and doc.get("kind") == KIND:
            from syscage.profile_schema import check_profile

            return profile_policy(check_profile(doc, str(doc.get("name"))), spec, floor, store)
        if isinstance(doc, dict) and isinstance(doc.get("linux"), dict) and "seccomp" in doc["linux"]:
            doc = doc["linux"]["seccomp"] or {}  # an OCI config.json: its linux.seccomp
        return oci_policy(doc, spec, arch)
    profile = store.read(spec)
    if profile is None:
        raise SyscageError(f"no profile named {spec}", "list profiles with `syscage list`, or give a file path")
    return profile_policy(profile, f"profile {spec}", floor, store)


def _is_name(spec: str) -> bool:
    from syscage.names import validate_profile_name

    try:
        validate_profile_name(spec)
    except SyscageError:
        return False
    return True


def _describe(policy: Policy, name: str) -> str:
    status = policy.status(name)
    return f"conditionally allowed ({policy.conditional[name]})" if status == "conditional" else status


def diff(a: Policy, b: Policy) -> dict[str, Any]:
    """What each allows that the other does not at all, and what one allows outright and the other only
    under conditions."""
    names = sorted(a.names() | b.names())
    only_a, only_b, conditional = [], [], []
    for n in names:
        sa, sb = a.status(n), b.status(n)
        if sa == sb and sa != "conditional":
            continue
        entry = {"syscall": n, "a": _describe(a, n), "b": _describe(b, n)}
        if sb == "denied":
            only_a.append(entry)
        elif sa == "denied":
            only_b.append(entry)
        elif sa != sb or a.conditional.get(n) != b.conditional.get(n):
            conditional.append(entry)
    return {"a": a.label, "b": b.label, "only_a": only_a, "only_b": only_b, "conditional": conditional}


def check(profile: Policy, reference: Policy) -> tuple[list[str], dict[str, str]]:
    """The gate: (syscalls the profile allows that the reference does not allow at all, those it allows only
    under conditions -> why)."""
    allowed = profile.allowed | set(profile.conditional)
    denied = sorted(n for n in allowed if reference.status(n) == "denied")
    conditional = {n: reference.conditional[n] for n in sorted(allowed) if reference.status(n) == "conditional"}
    return denied, conditional


def format_diff(result: dict[str, Any]) -> str:
    lines = [f"A = {result['a']}", f"B = {result['b']}"]
    for key, title in (("only_a", "allowed by A, not by B"), ("only_b", "allowed by B, not by A")):
        lines.append(f"{title} ({len(result[key])}):")
        lines.extend(f"  {e['syscall']:24} A: {e['a']}; B: {e['b']}" for e in result[key])
    lines.append(f"allowed by both, but conditionally by one or both ({len(result['conditional'])}):")
    lines.extend(f"  {e['syscall']:24} A: {e['a']}; B: {e['b']}" for e in result["conditional"])
    return "\n".join(lines)


# Syscalls tied to kernel CVEs by the Confine study (Ghavamnia et al., RAID 2020): allowing one exposes
# the container to the kernel bugs reached through it.
CONFINE_CVE_SYSCALLS = ("keyctl", "add_key", "request_key", "userfaultfd", "perf_event_open", "bpf", "unshare",
                        "pivot_root", "move_pages", "inotify_add_watch", "clock_nanosleep", "waitid", "setsockopt")


def first_run(profile: dict[str, Any], name: str) -> dict[str, Any]:
    """The run that first needed `name`: the kept run record stopped when the syscall was first seen (merge
    stamps a syscall with its run's stop time), else just first_seen (that record is no longer kept)."""
    entry = profile["syscalls"][name]
    found = {"first_seen": entry["first_seen"], "sources": entry["sources"]}
    for run in profile["runs"]:
        if run.get("stopped") == entry["first_seen"]:
            return {**found, "container_id": run.get("container_id"),
                    "pre_exec": name in (run.get("pre_exec") or [])}
    return found


def describe_first(first: dict[str, Any]) -> str:
    if "floor" in first["sources"] and "observed" not in first["sources"]:
        return "in the seccomp.always_allow floor"
    if "kernel" in first["sources"] and "observed" not in first["sources"]:
        return "made by the kernel itself (every profile allows it)"
    base = "runtime-base" in first["sources"] and "observed" not in first["sources"]
    what = "added from the runtime base set" if base else "first needed"
    if first.get("container_id"):
        by = " (by the runtime, before exec)" if first.get("pre_exec") else ""
        return f"{what} by the run of {first['container_id']} at {first['first_seen']}{by}"
    return f"{what} at {first['first_seen']} (that run's record is no longer kept)"


def lint(profile: dict[str, Any], floor: tuple[str, ...] = (),
         never_allow: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Findings, one per syscall and rule: Docker's default denies it (or grants it only under conditions), the
    Confine study ties it to kernel CVEs, or seccomp.never_allow names it yet the profile still allows it."""
    from syscage import dockerdefault

    findings: list[dict[str, Any]] = []
    names = sorted(set(profile["syscalls"]) | set(floor))
    docker_applies = profile.get("arch") == dockerdefault.ARCH
    for name in names:
        first = first_run(profile, name) if name in profile["syscalls"] else \
            {"first_seen": "-", "sources": ["floor"]}
        where = describe_first(first)
        rules = []
        if docker_applies and name not in dockerdefault.ALLOWED:
            why = dockerdefault.CONDITIONAL.get(name)
            if why is None:
                rules.append(("docker-default-denies", "Docker's default seccomp profile denies it"))
            elif all("with CAP_" in alternative for alternative in why.split("; or ")):
                # Not for a default Docker container; one allowed under argument conditions (clone without
                # namespace flags, socket but AF_VSOCK) is not flagged: its ordinary uses are allowed.
                rules.append(("docker-default-needs-capability", f"Docker's default allows it only {why}"))
        if name in CONFINE_CVE_SYSCALLS:
            rules.append(("kernel-cve", "tied to kernel CVEs (Confine study)"))
        if name in never_allow:
            rules.append(("never-allow", "named in seccomp.never_allow (withheld from the next recorded run on)"))
        findings.extend({"syscall": name, "rule": rule, "detail": detail, "first": first, "where": where}
                        for rule, detail in rules)
    return findings
