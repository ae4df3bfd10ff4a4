"""Render a profile as an AppArmor profile, checked with apparmor_parser before anyone uses it.

The AppArmor sections of profile.json (schema 1; empty until a tracer fills them):

    "files": {"/abs/container/path": {"access": ["r", ...], "first_run": ID, "first_seen": TS, "runs": N}}
        Paths as the container sees them (os.fsdecode of the kernel's bytes, so any byte survives JSON);
        a directory ends in "/" (AppArmor names directories that way). Access kinds: r read, w write,
        a append, c create, d delete, l link, k lock, x exec, m mmap-exec. Executables are `files`
        entries with "x" (no section of their own): one path, one rule, whatever the process did with it.
    "network": {"FAMILY TYPE": {"first_run": ID, "first_seen": TS, "runs": N}}
        e.g. "inet stream", "unix dgram", "netlink raw": AppArmor's family and socket type names.
    "capabilities": {"chown": {"first_run": ID, "first_seen": TS, "runs": N}}
        lower-case names without CAP_, as AppArmor spells them.
    "files_traced", "network_traced", "capabilities_traced": top-level booleans, absent = false. True
        only when every merged run traced that kind (a run that could not, e.g. capabilities on a kernel
        without kprobes, makes the union unreliable, so merging ANDs the flags).

How a section becomes rules:

* Traced: exactly what was learned. Files are generalised only as syscage.apparmor_paths documents
  (per-pid /proc entries, random temporary names the container created); "x" renders `ix` (an executed
  program stays in this profile, never `px`/`ux`), "c" and "d" render `w` (AppArmor has no separate
  create or delete permission; `w` grants both), "a" with "w" renders `w` (AppArmor refuses both).
* Not traced: never guessed. The section is confined as Docker's docker-default confines it: `file,`,
  `network,`, and for capabilities `capability,` (a rule cannot grant what the process lacks, so this
  leaves the spec's own capability set in force) or, when the caller gives the spec's bounding set, one
  `capability` rule per member.
* Always (whatever was learned): the denials docker-default keeps (writes into /proc outside a process's
  own entries and /proc/sys/kernel/shm*, /proc/sysrq-trigger, /proc/kcore, writes under most of /sys,
  /sys/firmware, /sys/kernel/security, mount, AF_ALG sockets), its signal rules (receive from unconfined,
  runc and crun; send and receive within the profile) and ptrace within the profile. A deny rule wins
  over a learned allow, as under Docker.

The profile is `syscage-NAME` with flags=(attach_disconnected,mediate_deleted), ABI 3.0 (as moby pins it:
under ABI 4 a `network` rule no longer covers unix sockets). Every rule learned says which run first
needed it. Output is deterministic: same observations, same bytes (sorted; no timestamps or revision).

Paths are untrusted (a container names its own files): every byte outside [A-Za-z0-9/._-] is written as a
`\\xHH` escape inside a quoted string, which apparmor_parser turns into that literal byte, never a glob,
variable, quote, comment or rule separator. Run ids in comments are escaped the same way.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from syscage.apparmor_paths import Glob, Part, generalise
from syscage.errors import SyscageError
from syscage.names import validate_profile_name

Corrupt = Callable[[str], SyscageError]

PREFIX = "syscage-"
PARSER = "apparmor_parser"
# The feature set every profile is compiled against when checked: Debian's apparmor package pins the
# parser's policy to it (/etc/apparmor/parser.conf). Without a features file, a host whose kernel has no
# AppArmor compiles with a minimal set that silently drops network, signal, ptrace and mount rules.
FEATURES = Path("/usr/share/apparmor-features/features")
CHECK_TIMEOUT = 60.0  # seconds; far above a check's time

ACCESS = "rwacdlkxm"


def _names(words: str) -> frozenset[str]:
    return frozenset(words.split())


CAPABILITIES = _names(
    "chown dac_override dac_read_search fowner fsetid kill setgid setuid setpcap linux_immutable net_bind_service "
    "net_broadcast net_admin net_raw ipc_lock ipc_owner sys_module sys_rawio sys_chroot sys_ptrace sys_pacct "
    "sys_admin sys_boot sys_nice sys_resource sys_time sys_tty_config mknod lease audit_write audit_control "
    "setfcap mac_override mac_admin syslog wake_alarm block_suspend audit_read perfmon bpf checkpoint_restore"
    )
FAMILIES = _names(
    "unix inet ax25 ipx appletalk netrom bridge atmpvc x25 inet6 rose netbeui security key netlink packet ash "
    "econet atmsvc rds sna irda pppox wanpipe llc ib mpls can tipc bluetooth iucv rxrpc isdn phonet ieee802154 "
    "caif alg nfc vsock kcm qipcrtr smc xdp")
SOCK_TYPES = frozenset(("stream", "dgram", "seqpacket", "rdm", "raw", "packet"))

_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-")

# Equivalent to the deny rules of moby's docker-default template (github.com/moby/profiles, apparmor
# template.go), written out here; the comments say what each keeps out.
DOCKER_DEFAULT_DENIES = (
    ("deny network alg,", "AF_ALG, the kernel crypto API"),
    ("deny @{PROC}/* w,", "files directly in /proc"),
    ("deny @{PROC}/{[^1-9/],[^1-9/][^0-9/],[^1-9s/][^0-9y/][^0-9s/],[^1-9/][^0-9/][^0-9/][^0-9/]*}/** w,",
     "/proc subdirectories other than /proc/<pid> and /proc/sys"),
    ("deny @{PROC}/sys/[^k]** w,", "/proc/sys except /proc/sys/kernel"),
    ("deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,", "/proc/sys/kernel except shm*"),
    ("deny @{PROC}/sysrq-trigger rwklx,", None),
    ("deny @{PROC}/kcore rwklx,", None),
    ("deny mount,", None),
    ("deny /sys/[^f]*/** wklx,", "/sys except /sys/fs/cgroup"),
    ("deny /sys/f[^s]*/** wklx,", None),
    ("deny /sys/fs/[^c]*/** wklx,", None),
    ("deny /sys/fs/c[^g]*/** wklx,", None),
    ("deny /sys/fs/cg[^r]*/** wklx,", None),
    ("deny /sys/firmware/** rwklx,", None),
    ("deny /sys/devices/virtual/powercap/** rwklx,", None),
    ("deny /sys/kernel/security/** rwklx,", None),
)


def profile_name(name: str) -> str:
    """The AppArmor profile name for syscage profile `name`: prefixed, so never one of the host's."""
    return PREFIX + validate_profile_name(name)


def render(profile: dict[str, Any], bounding: Iterable[str] | None = None) -> str:
    """The AppArmor profile text for a stored profile. `bounding`: the spec's capability bounding set
    (CAP_CHOWN or chown), used only when capabilities were not traced."""
    name = profile_name(profile["name"])
    corrupt = _corrupt(profile["name"])
    lines = [
        f"# AppArmor profile {name}, rendered by syscage from profiles/{profile['name']}/profile.json.",
        "abi <abi/3.0>,",
        "include <tunables/global>",
        "",
        f'profile "{name}" flags=(attach_disconnected,mediate_deleted) {{',
        "  # From Docker's docker-default profile (moby/profiles apparmor template): signals, ptrace, denials.",
        "  signal (receive) peer=unconfined,",
        "  signal (receive) peer=runc,",
        "  signal (receive) peer=crun,",
        f'  signal (send,receive) peer="{name}",',
        f'  ptrace (trace,tracedby,read,readby) peer="{name}",',
    ]
    lines += [f"  {rule}  # {why}" if why else f"  {rule}" for rule, why in DOCKER_DEFAULT_DENIES]
    lines += ["", *_file_rules(profile, corrupt), "", *_network_rules(profile, corrupt), "",
              *_capability_rules(profile, bounding, corrupt), "}"]
    return "\n".join(lines) + "\n"


def check(text: str, parser: str = PARSER, features: Path = FEATURES) -> None:
    """Parse and compile `text` with apparmor_parser (-Q: no kernel load, -K: no cache), against `features`
    so that the result does not depend on this host's kernel. Rejected text raises with the parser's words."""
    if not features.is_file():
        raise SyscageError(f"cannot check AppArmor profiles: {features} is missing",
                           "install Debian's apparmor package")
    # A rule the features cannot enforce is dropped with a warning, which must be an error here (a deny
    # rule silently gone would leave the container less confined); --Werror needs the --warn too. A rule
    # "downgraded to a lesser but still enforcing rule" (`network,` without af_unix mediation) is fine.
    said = run_parser([parser, "-Q", "-K", "-M", str(features), *STRICT], text.encode(), CHECK_TIMEOUT,
                      "check a profile", "install Debian's apparmor package")
    if said is not None:
        raise SyscageError(f"apparmor_parser rejected the rendered profile: {said}",
                           "this is a syscage bug: please report it with the profile's profile.json")


# A rule the policy's features cannot enforce is an error, not a warning (--Werror needs its --warn).
STRICT = ("--warn=rule-not-enforced", "--Werror=rule-not-enforced", "--abort-on-error")


def run_parser(argv: list[str], data: bytes, timeout: float, doing: str, install_hint: str) -> str | None:
    """Run apparmor_parser (argv[0]) with `data` on stdin: None when it succeeds, else what it said, on one
    line. A missing parser raises ParserMissing, one that does not finish a SyscageError."""
    import subprocess  # here: enforce renders on a container's start path, and loads only when it changed

    from syscage.apparmor_load import ParserMissing

    try:
        done = subprocess.run(argv, input=data, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise ParserMissing(f"cannot {doing}: {argv[0]} not found", install_hint) from None
    except subprocess.TimeoutExpired:
        raise SyscageError(f"{argv[0]} did not {doing} within {timeout:g} s",
                           "check the machine's load and apparmor_parser") from None
    if done.returncode == 0:
        return None
    said = " / ".join(line.strip() for line in done.stderr.decode(errors="replace").splitlines() if line.strip())
    return said or f"exit {done.returncode}"


def render_checked(profile: dict[str, Any], bounding: Iterable[str] | None = None, parser: str = PARSER,
                   features: Path = FEATURES) -> str:
    text = render(profile, bounding)
    check(text, parser, features)
    return text


def quote_path(parts: Iterable[Part]) -> str:
    """A quoted AppArmor path: literal bytes escaped (anything outside [A-Za-z0-9/._-] as \\xHH), globs as is."""
    out = []
    for part in parts:
        if isinstance(part, Glob):
            out.append(part.text)
        else:
            out.append("".join(chr(b) if b in _SAFE else f"\\x{b:02x}" for b in part))
    return '"' + "".join(out) + '"'


def comment(text: str) -> str:
    """Text safe to end a line with: printable ASCII kept, anything else (a newline too) as \\xHH."""
    return "".join(c if " " <= c <= "~" else "".join(f"\\x{b:02x}" for b in _bytes(c)) for c in text)


def _bytes(c: str) -> bytes:
    try:
        return c.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate no path decoding produces
        return c.encode("utf-8", "backslashreplace")


# --- sections ---------------------------------------------------------------------------------------------

def _corrupt(name: str) -> Corrupt:
    def bad(why: str) -> SyscageError:
        return SyscageError(f"profile {name} is corrupt: {why}",
                            f"inspect {name}/profile.json, restore it or remove the profile and learn again")
    return bad


def _section(profile: dict[str, Any], key: str, corrupt: Corrupt) -> dict[str, dict[str, Any]]:
    table = profile.get(key, {})
    if not isinstance(table, dict):
        raise corrupt(f"'{key}' is not an object")
    for item, entry in table.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("first_run"), str)
                and isinstance(entry.get("first_seen"), str) and isinstance(entry.get("runs"), int)):
            raise corrupt(f"'{key}' entry {comment(item)!r} is malformed")
    return table


def _traced(profile: dict[str, Any], key: str, corrupt: Corrupt) -> bool:
    flag = profile.get(f"{key}_traced", False)
    if not isinstance(flag, bool):
        raise corrupt(f"'{key}_traced' is not true or false")
    return flag


def _unused(table: dict[str, Any]) -> str:
    """Learned entries of a section that is not trusted as a whole are kept in profile.json, not rendered."""
    return f" ({len(table)} learned entries not used)" if table else ""


def _first(entries: Iterable[dict[str, Any]]) -> str:
    """The run that first needed a rule (the earliest of the entries it covers; ties by run id)."""
    _seen, run = min((e["first_seen"], e["first_run"]) for e in entries)
    return f"first needed by run {comment(run)}"


def _file_rules(profile: dict[str, Any], corrupt: Corrupt) -> list[str]:
    files = _section(profile, "files", corrupt)
    if not _traced(profile, "files", corrupt):
        return [f"  # files: not traced by every run{_unused(files)}, confined as docker-default confines them",
                "  file,"]
    created = set()
    for path, entry in files.items():
        access = entry.get("access")
        if not (isinstance(access, list) and access and all(isinstance(a, str) and len(a) == 1 and a in ACCESS
                                                            for a in access)):
            raise corrupt(f"access of file {comment(path)!r} is not a list of {', '.join(ACCESS)}")
        if not path.startswith("/") or "\0" in path:
            raise corrupt(f"file path {comment(path)!r} is not absolute")
        try:
            os.fsencode(path)
        except UnicodeEncodeError:
            raise corrupt(f"file path {comment(path)!r} is not a path") from None
        if "c" in access:
            created.add(path)
    rules: dict[str, tuple[set[str], list[dict[str, Any]]]] = {}
    for path, entry in files.items():
        rendered = quote_path(generalise(path, created))
        kinds, entries = rules.setdefault(rendered, (set(), []))
        kinds.update(entry["access"])
        entries.append(entry)
    lines = ["  # files: learned"]
    for rendered in sorted(rules):
        kinds, entries = rules[rendered]
        lines.append(f"  {rendered} {_perms(kinds)},  # {_first(entries)}")
    return lines


def _perms(kinds: set[str]) -> str:
    out = "r" if "r" in kinds else ""
    if kinds & {"w", "c", "d"}:
        out += "w"
    elif "a" in kinds:
        out += "a"
    out += "".join(k for k in "lkm" if k in kinds)
    return out + ("ix" if "x" in kinds else "")


def _network_rules(profile: dict[str, Any], corrupt: Corrupt) -> list[str]:
    network = _section(profile, "network", corrupt)
    if not _traced(profile, "network", corrupt):
        return [f"  # network: not traced by every run{_unused(network)}, confined as docker-default confines it",
                "  network,"]
    lines = ["  # network: learned"]
    for key in sorted(network):
        family, _, kind = key.partition(" ")
        if family not in FAMILIES or kind not in SOCK_TYPES:
            raise corrupt(f"network entry {comment(key)!r} is not 'FAMILY TYPE'")
        lines.append(f"  network {family} {kind},  # {_first([network[key]])}")
    return lines


def _capability_rules(profile: dict[str, Any], bounding: Iterable[str] | None, corrupt: Corrupt) -> list[str]:
    caps = _section(profile, "capabilities", corrupt)
    for cap in caps:
        if cap not in CAPABILITIES:
            raise corrupt(f"unknown capability {comment(cap)!r}")
    if _traced(profile, "capabilities", corrupt):
        return ["  # capabilities: learned",
                *(f"  capability {cap},  # {_first([caps[cap]])}" for cap in sorted(caps))]
    if bounding is None:
        return [f"  # capabilities: not traced by every run{_unused(caps)}; the spec's own capability set applies",
                "  capability,"]
    names = set()
    for cap in bounding:
        short = cap.lower().removeprefix("cap_") if isinstance(cap, str) else ""
        if short not in CAPABILITIES:
            raise SyscageError(f"the spec's bounding set names an unknown capability {comment(str(cap))!r}",
                               "fix process.capabilities.bounding in the container's config.json")
        names.add(short)
    return [f"  # capabilities: not traced by every run{_unused(caps)}; the spec's bounding set",
            *(f"  capability {cap}," for cap in sorted(names))]
