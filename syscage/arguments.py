"""The syscall arguments syscage learns and enforces: a table (ARGUMENTS), their names, and the OCI
seccomp conditions a profile's learned values become.

A profile's `arguments` section holds, per conditioned syscall, the values its runs used (the argument
masked to the bits that matter for a flag word) and which run first used each; or `unconditional`, saying
why the syscall is allowed with any argument (too many distinct values in one run, values not recorded by a
run that made it, allowed by a runtime base set). A syscall without an entry is allowed unconditionally: so
are all those of a profile learned before arguments were (schema 1 profiles without the section).

Pure Python, no libseccomp: rendering runs on the container's start path.
"""

from __future__ import annotations

import errno as errno_codes
from typing import Any, NamedTuple

# Flag bits (linux/sched.h): the namespace bits Docker's default forbids clone to set without CAP_SYS_ADMIN.
CLONE_FLAGS = {"CLONE_NEWTIME": 0x80, "CLONE_NEWNS": 0x20000, "CLONE_NEWCGROUP": 0x02000000,
               "CLONE_NEWUTS": 0x04000000, "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000,
               "CLONE_NEWPID": 0x20000000, "CLONE_NEWNET": 0x40000000}
NAMESPACE_BITS = sum(v for k, v in CLONE_FLAGS.items() if k != "CLONE_NEWTIME")  # 0x7e020000, as Docker
PROT_FLAGS = {"PROT_EXEC": 4}


class Entry(NamedTuple):
    """One conditioned argument. kind "value": the argument is compared whole (SCMP_CMP_EQ); "flags": only
    its `mask` bits are (SCMP_CMP_MASKED_EQ), so bits that vary harmlessly (a thread's CLONE_SETTLS, a
    mapping's PROT_READ) do not multiply the values. max_values: more distinct values than this in one run
    and the syscall is allowed unconditionally (also bounded by seccomp.max_argument_values)."""

    syscall: str
    index: int
    kind: str
    mask: int
    max_values: int
    why: str


# Adding an entry is one line here (and its value names below, if it has any).
ARGUMENTS: tuple[Entry, ...] = (
    Entry("clone", 0, "flags", NAMESPACE_BITS, 8,
          "new namespaces (a user namespace above all) are the usual first step out of a container"),
    Entry("unshare", 0, "flags", NAMESPACE_BITS | CLONE_FLAGS["CLONE_NEWTIME"], 8, "the same, for the caller"),
    Entry("setns", 1, "value", 0, 8, "the kinds of namespace the caller may join (0: any, by its fd)"),
    Entry("socket", 0, "value", 0, 16,
          "address family: AF_PACKET, AF_NETLINK, AF_VSOCK... reach kernel code a service never needs"),
    Entry("personality", 0, "value", 0, 8, "personas change address-space layout and ABI quirks"),
    Entry("prctl", 0, "value", 0, 32, "the option: a few change privileges or dumpability"),
    Entry("ioctl", 1, "value", 0, 16, "the request, when a container uses few: ioctls are a large kernel surface"),
    Entry("mprotect", 2, "flags", PROT_FLAGS["PROT_EXEC"], 2, "making memory executable (none: W^X programs)"),
    Entry("mmap", 2, "flags", PROT_FLAGS["PROT_EXEC"], 2, "mapping executable memory"),
)
BY_SYSCALL = {e.syscall: e for e in ARGUMENTS}
# clone3 passes its flags in user memory, which a seccomp filter cannot read: the tracer reads them and
# counts them as clone's, and a profile conditioning clone answers clone3 with ENOSYS (as Docker's default
# does), so libc falls back to clone, whose flags the filter does see.
CLONE3_AS = "clone"
DEFAULT_MAX_VALUES = 16  # seccomp.max_argument_values

_FAMILIES = ("AF_UNSPEC AF_UNIX AF_INET AF_AX25 AF_IPX AF_APPLETALK AF_NETROM AF_BRIDGE AF_ATMPVC AF_X25 AF_INET6 "
             "AF_ROSE AF_DECnet AF_NETBEUI AF_SECURITY AF_KEY AF_NETLINK AF_PACKET AF_ASH AF_ECONET AF_ATMSVC "
             "AF_RDS AF_SNA AF_IRDA AF_PPPOX AF_WANPIPE AF_LLC AF_IB AF_MPLS AF_CAN AF_TIPC AF_BLUETOOTH AF_IUCV "
             "AF_RXRPC AF_ISDN AF_PHONET AF_IEEE802154 AF_CAIF AF_ALG AF_NFC AF_VSOCK AF_KCM AF_QIPCRTR AF_SMC "
             "AF_XDP AF_MCTP")
FAMILY_NAMES = tuple(_FAMILIES.split())
_PERSONAS = {0: "PER_LINUX", 8: "PER_LINUX32", 0x20000: "PER_LINUX|UNAME26", 0x20008: "PER_LINUX32|UNAME26",
             0x0040000: "PER_LINUX|ADDR_NO_RANDOMIZE", 0xFFFFFFFF: "query (0xffffffff)"}
_PRCTL = {1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE",
          8: "PR_SET_KEEPCAPS", 15: "PR_SET_NAME", 16: "PR_GET_NAME", 22: "PR_SET_SECCOMP", 23: "PR_CAPBSET_READ",
          24: "PR_CAPBSET_DROP", 36: "PR_SET_CHILD_SUBREAPER", 38: "PR_SET_NO_NEW_PRIVS", 39: "PR_GET_NO_NEW_PRIVS",
          47: "PR_CAP_AMBIENT", 0x53564d41: "PR_SET_VMA"}


def value_name(syscall: str, value: int) -> str:
    """A learned value as `syscage show` prints it: AF_UNIX, CLONE_NEWUSER|CLONE_NEWNS, PROT_EXEC, ..."""
    entry = BY_SYSCALL.get(syscall)
    if entry is None:
        return hex(value)
    if syscall == "socket" and 0 <= value < len(FAMILY_NAMES):
        return FAMILY_NAMES[value]
    if syscall == "personality" and value in _PERSONAS:
        return _PERSONAS[value]
    if syscall == "prctl" and value in _PRCTL:
        return _PRCTL[value]
    if entry.kind == "flags":
        flags = PROT_FLAGS if syscall in ("mmap", "mprotect") else CLONE_FLAGS
        names = [name for name, bit in flags.items() if value & bit]
        rest = value & ~sum(bit for bit in flags.values())
        return "|".join(names + ([hex(rest)] if rest else [])) or "none of " + "|".join(
            name for name, bit in flags.items() if entry.mask & bit)
    return hex(value) if value > 255 else str(value)


def covers_all(entry: Entry, values: set[int]) -> bool:
    """Every masked value of a flag word was seen: the condition would allow everything."""
    return entry.kind == "flags" and len(values) >= 1 << bin(entry.mask).count("1")


def conditions(profile: dict[str, Any], unconditional: set[str] | frozenset[str] = frozenset(),
               withheld: set[str] | frozenset[str] = frozenset()) -> dict[str, list[list[dict[str, Any]]]]:
    """Syscall -> its allowed alternatives (each a list of OCI seccomp `args`, ANDed; the alternatives are
    ORed), for the profile's conditioned syscalls, except those in `unconditional` (the floor) and the
    `withheld` ones (seccomp.never_allow: a withheld clone is not allowed back for clone3's sake)."""
    out: dict[str, list[list[dict[str, Any]]]] = {}
    for name, section in (profile.get("arguments") or {}).items():
        entry = BY_SYSCALL.get(name)
        if (entry is None or name in unconditional or name in withheld or section.get("unconditional")
                or not section.get("values")):
            continue
        values = {int(v) for v in section["values"]}
        if covers_all(entry, values):
            continue
        out[name] = [[condition(entry, v)] for v in sorted(values)]
    return out


def condition(entry: Entry, value: int) -> dict[str, Any]:
    if entry.kind == "flags":
        return {"index": entry.index, "value": entry.mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ"}
    return {"index": entry.index, "value": value, "op": "SCMP_CMP_EQ"}


def clone3_rule() -> dict[str, Any]:
    return {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno_codes.ENOSYS}


def rules(allowed: set[str], conds: dict[str, list[list[dict[str, Any]]]]) -> tuple[set[str], list[dict[str, Any]]]:
    """The allowed syscalls left unconditional, and the rules for the conditioned ones: one ALLOW rule per
    alternative (runc and crun would OR conditions on one index anyway), and clone3 → ENOSYS when clone is
    conditioned (clone is then allowed for clone3's learned flags too: they were recorded as clone's)."""
    plain = set(allowed)
    out: list[dict[str, Any]] = []
    live = {n: c for n, c in conds.items() if n in allowed or (n == CLONE3_AS and "clone3" in allowed)}
    for name in sorted(live):
        plain.discard(name)
        out.extend({"names": [name], "action": "SCMP_ACT_ALLOW", "args": args} for args in live[name])
    if CLONE3_AS in live:
        plain.discard("clone3")
        out.append(clone3_rule())
    return plain, out


# The values Docker's default profile forbids (syscage.dockerdefault.CONDITIONAL) for a container without
# CAP_SYS_ADMIN: a learned one is shown with the run that used it.
_DOCKER_PERSONAS = {0, 8, 0x20000, 0x20008, 0xFFFFFFFF}


def docker_forbids(syscall: str, value: int) -> bool:
    if syscall == "clone":
        return bool(value & NAMESPACE_BITS)
    if syscall == "socket":
        return value in (38, 40)  # Docker's "EQ 39 or GT 40 or LT 38": AF_ALG and AF_VSOCK denied
    if syscall == "personality":
        return value not in _DOCKER_PERSONAS
    return False


def describe(profile: dict[str, Any]) -> list[str]:
    """`syscage show`'s lines for the learned arguments (none for a profile learned before they were)."""
    section = profile.get("arguments") or {}
    if not section:
        return ["argument conditions: none learned (every syscall allowed with any argument)"]
    conditioned = conditions(profile)
    lines = [f"argument conditions ({len(conditioned)} syscalls conditioned; any other allows every value):"]
    for name in sorted(section):
        entry, found = BY_SYSCALL.get(name), section[name]
        if entry is None:
            continue
        where = f"arg{entry.index}" + (f" & {entry.mask:#x}" if entry.kind == "flags" else "")
        if found.get("unconditional"):
            lines.append(f"  {name}: any value ({found['unconditional']})")
            continue
        values = {int(v): w for v, w in found.get("values", {}).items()}
        if name not in conditioned:
            lines.append(f"  {name} {where}: every value of the mask was used, so any is allowed")
            continue
        shown = []
        for value, where_first in sorted(values.items()):
            text = value_name(name, value)
            if docker_forbids(name, value):
                text += f" [Docker's default forbids it; first used by run {where_first.get('first_run', '?')}]"
            shown.append(text)
        lines.append(f"  {name} {where}: {', '.join(shown)}")
    if "clone" in conditioned:
        lines.append("  clone3: answered with ENOSYS (its flags cannot be checked; libc falls back to clone)")
    return lines
