"""Detect AppArmor, and load a rendered profile into the kernel only when it changed.

Both run on a container's start path (enforce, complain), so both are cheap when there is nothing to do:

* available(): one read of /sys/module/apparmor/parameters/enabled and one stat in securityfs. On a kernel
  without AppArmor the first fails at once.
* ensure_loaded(): the text syscage last loaded under a label is kept in RUN_DIR/apparmor/LABEL (run_dir is
  a tmpfs, emptied at boot like the kernel's policy). When the new text is byte for byte that copy and the
  kernel's profile list still shows the label in the wanted mode, nothing runs. Otherwise
  `apparmor_parser -r` (the costly step, far slower on a loaded machine) loads it, then the copy is
  replaced. A lock per label keeps two containers starting at once from loading it twice.

Labels: `syscage-NAME` (enforce) and `syscage-NAME-COMPLAIN` (complain, loaded with flags=(complain)).
Complain gets a name of its own because replacing a profile changes the confinement of every task already
under it: a complain container must never switch running enforce containers of the same profile to
complain. Profile names are lower case, so no enforce label can be a complain label.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

from syscage.atomic import write_atomically
from syscage.errors import SyscageError
from syscage.locks import flocked
from syscage.names import validate_profile_name

# The renderer's (syscage.apparmor), not imported from it: this module is imported on every enforce's start
# path, the renderer and subprocess only where a profile is rendered or loaded.
PREFIX = "syscage-"
PARSER = "apparmor_parser"

ENABLED = Path("/sys/module/apparmor/parameters/enabled")
SECURITYFS = Path("/sys/kernel/security/apparmor")
COMPLAIN_SUFFIX = "-COMPLAIN"
STACK = "//&"  # AppArmor's label stacking: confined by every profile of the stack at once
LOAD_TIMEOUT = 60.0  # seconds; far above a load's time, even on a loaded machine
FLAGS = "flags=(attach_disconnected,mediate_deleted)"  # the renderer's profile flags


class ParserMissing(SyscageError):
    """apparmor_parser is not installed: the kernel has AppArmor, but nothing can load a profile."""


class Loaded(NamedTuple):
    label: str
    loaded: bool  # the parser ran (the profile was absent, changed, or in another mode)
    seconds: float  # the whole check, and the load if there was one


def available(enabled: Path | None = None, securityfs: Path | None = None) -> str | None:
    """None when this kernel enforces AppArmor profiles, else why not (one phrase, for the log)."""
    enabled, securityfs = enabled or ENABLED, securityfs or SECURITYFS
    try:
        flag = enabled.read_bytes().strip()
    except OSError:
        return f"the kernel has no AppArmor ({enabled} is missing)"
    if flag != b"Y":
        return "AppArmor is built into the kernel but disabled (apparmor=0, or not in the lsm= list)"
    if not (securityfs / "profiles").exists():
        return f"securityfs shows no AppArmor ({securityfs}/profiles is missing: is securityfs mounted?)"
    return None


def label_for(name: str, mode: str) -> str:
    """The AppArmor label of profile `name` in `mode` ("enforce" or "complain")."""
    return PREFIX + validate_profile_name(name) + (COMPLAIN_SUFFIX if mode == "complain" else "")


def for_mode(text: str, name: str, mode: str) -> str:
    """The renderer's text (profile `syscage-NAME`) as the profile to load for `mode`: for complain, named
    `syscage-NAME-COMPLAIN` (its own signal and ptrace peer too) with flags=(complain)."""
    if mode != "complain":
        return text
    enforce, complain = label_for(name, "enforce"), label_for(name, mode)
    header = f'profile "{enforce}" {FLAGS} {{'
    if header not in text:
        raise SyscageError(f"the rendered AppArmor profile of {name} has no line {header!r}",
                           "this is a syscage bug: please report it")
    # Quoted names only: a learned path is always quoted starting with "/", so it cannot be one.
    return text.replace(header, f'profile "{complain}" flags=(attach_disconnected,mediate_deleted,complain) {{') \
               .replace(f'peer="{enforce}"', f'peer="{complain}"')


def stacked(ours: str, own: str | None) -> str:
    """The label a container gets: ours, stacked on the spec's own profile when it names one (`unconfined`
    or none adds nothing). The spec's profile keeps confining it: never looser than the spec."""
    return ours if own in (None, "", "unconfined") else f"{ours}{STACK}{own}"


def own_label(label: object) -> str | None:
    """The spec's apparmorProfile without syscage's own part (`syscage-*`, which an earlier enforce or
    complain of a reused bundle left); None when nothing else is left."""
    if not isinstance(label, str) or not label:
        return None
    rest = [part for part in label.split(STACK) if not part.startswith(PREFIX)]
    return STACK.join(rest) or None


def ensure_loaded(text: str, label: str, mode: str, run_dir: Path, parser: str | None = None,
                  securityfs: Path | None = None) -> Loaded:
    """Have `text` (the profile `label`, in `mode`) loaded in the kernel, running the parser only if it is
    not already loaded exactly so by syscage."""
    started = time.monotonic()
    directory = run_dir / "apparmor"
    copy = directory / label
    data = text.encode()
    with _locked(directory, label):
        if _read(copy) == data and _in_kernel(label, mode, securityfs or SECURITYFS):
            return Loaded(label, False, time.monotonic() - started)
        load(data, label, parser or PARSER)
        write_atomically(copy, data, mode=0o600, durable=False)  # tmpfs, emptied at boot with the policy
    return Loaded(label, True, time.monotonic() - started)


def load(data: bytes, label: str, parser: str = PARSER) -> None:
    """apparmor_parser -r (load, or replace) from stdin; no cache (-K). A rule the policy's features cannot
    enforce is an error, as when the renderer checks a profile: a deny rule silently dropped would leave
    the container less confined."""
    from syscage.apparmor import STRICT, run_parser

    said = run_parser([parser, "-r", "-K", *STRICT], data, LOAD_TIMEOUT, f"load AppArmor profile {label}",
                      "install Debian's apparmor package, or set apparmor.mode = \"off\"")
    if said is not None:
        raise SyscageError(f"apparmor_parser could not load AppArmor profile {label}: {said}",
                           "check that the kernel's AppArmor accepts policy (aa-status), or set "
                           "apparmor.mode = \"off\"")


def _in_kernel(label: str, mode: str, securityfs: Path) -> bool:
    """The kernel's policy lists `label` in `mode` (one line "NAME (MODE)" per loaded profile)."""
    try:
        listing = (securityfs / "profiles").read_bytes()
    except OSError:
        return False
    return f"{label} ({mode})".encode() in listing.splitlines()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _locked(directory: Path, label: str) -> flocked:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return flocked(directory / f".{label}.lock")
