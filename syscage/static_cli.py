"""`syscage static NAME`: record the static set of a profile (syscage.static_syscalls), off the start path."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from syscage.config import Config
from syscage.errors import SyscageError

STATIC_CACHE = "static-cache"  # under the store: one JSON per analysed object, by content hash


def add_static_parser(sub: Any) -> None:
    p = sub.add_parser(
        "static", help="record which syscalls the profile's binaries can make (static analysis)",
        description="Analyse the programs that ran in the learning container, and the shared libraries they load, "
        "inside its rootfs: the syscalls their code can make (see README, Coverage). Recorded as the profile's "
        "static set, used by seccomp.coverage = learned+static (and to narrow learned+related). With --bundle, the "
        "rootfs is the bundle's and its process.args[0] is analysed too. Results are cached per binary by content "
        "hash under the store.",
        epilog="examples:\n  syscage static web tar gzip --bundle /srv/bundles/web\n"
        "  syscage static web /usr/bin/sqlite3 --rootfs /srv/rootfs/web --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name")
    p.add_argument("programs", nargs="*", metavar="PROGRAM", help="a name looked up in the rootfs PATH, or a path")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--rootfs", metavar="DIR", help="the container's root file system")
    where.add_argument("--bundle", metavar="DIR", help="an OCI bundle: its root.path and process.args[0]")
    p.add_argument("--json", action="store_true", help="print the static set as recorded")
    p.set_defaults(func=cmd_static)


def cmd_static(config: Config, args: argparse.Namespace) -> int:
    from syscage.static_syscalls import NotAnalysable, analyse_programs
    from syscage.store import ProfileStore

    programs = list(args.programs)
    if args.bundle:
        rootfs, entry = _from_bundle(Path(args.bundle))
        programs = [entry, *[p for p in programs if p != entry]] if entry else programs
    else:
        rootfs = Path(args.rootfs)
    if not rootfs.is_dir():
        raise SyscageError(f"rootfs {rootfs} is not a directory", "give the container's root file system")
    if not programs:
        raise SyscageError("no program to analyse", "name the programs that run in the container")
    store = ProfileStore.from_config(config)
    if store.read(args.name) is None:
        raise SyscageError(f"no profile named {args.name}", "learn it first; list profiles with `syscage list`")
    try:
        static = analyse_programs(rootfs, programs, config.store / STATIC_CACHE)
    except NotAnalysable as exc:
        raise SyscageError(f"static analysis for profile {args.name}: {exc}",
                           "name programs that are x86-64 ELF files in the rootfs") from None
    profile = store.set_static(args.name, static)
    if args.json:
        print(json.dumps(profile["static"], indent=2, sort_keys=True))
        return 0
    learned = set(profile["syscalls"])
    print(f"profile {args.name}: {len(static['syscalls'])} syscalls the code can make, "
          f"{len(set(static['syscalls']) - learned)} of them not learned")
    for path, facts in static["binaries"].items():
        state = "cached" if facts["cached"] else f"analysed in {facts['seconds']:.2f} s"
        print(f"  {path:48} {state}")
    return 0


def _from_bundle(bundle: Path) -> tuple[Path, str | None]:
    try:
        spec = json.loads((bundle / "config.json").read_text())
        root = Path(spec["root"]["path"])
        args = spec.get("process", {}).get("args") or []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SyscageError(f"cannot read the bundle {bundle}: {exc}", "give an OCI bundle directory") from None
    return (root if root.is_absolute() else bundle / root), (str(args[0]) if args else None)
