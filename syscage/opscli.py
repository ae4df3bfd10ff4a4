"""`syscage denials` and `syscage report`: what the kernel denied syscage's containers, and one page about a
profile. Registered by syscage.cli."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from syscage.config import Config
from syscage.errors import SyscageError

COLUMNS = ("TIME", "CONTAINER", "PROFILE", "MODE", "SYSCALL / ACCESS", "OUTCOME", "COUNT")


def add_parsers(sub: Any, example: Callable[..., dict[str, Any]]) -> None:
    p = sub.add_parser(
        "denials", help="what the kernel denied (enforce) or logged (complain) for syscage's containers",
        description="Reads the kernel's seccomp (audit type 1326) and AppArmor (1400) records: from /dev/kmsg when "
        "no audit daemon runs, else from the audit log. Each row: last time, container, profile, mode, syscall (or "
        "AppArmor operation and path), outcome (denied, or logged in complain mode) and count. Lines starting "
        "with 'note:' say what may be missing: rate-limited records, enforce containers whose runtime cannot "
        "log errno denials (runc 1.1), an actions_logged sysctl without errno. --add NAME merges the denied "
        "syscalls into the profile (source \"denials\").",
        **example("syscage denials", "syscage denials web --since 1h", "syscage denials web --follow",
                  "syscage denials web --add", "syscage denials --json | jq '.denials[].syscall'"))
    p.add_argument("name", nargs="?", help="only this profile's containers")
    p.add_argument("--since", metavar="WHEN", help="1h, 30m, 7d ago, or a date (2026-11-01, an ISO time)")
    p.add_argument("--follow", "-f", action="store_true", help="print denials as they happen (Ctrl-C ends)")
    p.add_argument("--json", action="store_true", help="machine-readable output (with --follow: one object a line)")
    p.add_argument("--add", action="store_true", help="merge the denied syscalls into profile NAME")
    p.add_argument("--all", action="store_true", help="also records of processes that are not syscage's containers")
    p.add_argument("--from", dest="source", metavar="SOURCE", default="auto",
                   help="kmsg, audit (the audit daemon's log), a file of either's lines, or auto (default)")
    p.set_defaults(func=cmd_denials)

    p = sub.add_parser(
        "report", help="write one self-contained HTML page about a profile",
        description="The profile at a glance, a chart of syscalls learned per run (has learning converged?), what "
        "Docker's default seccomp profile allows that this profile denies, the CVE-linked syscalls and whether each "
        "is blocked, the denials the kernel recorded, and completeness warnings. One file, no scripts, nothing "
        "fetched: it opens offline.",
        **example("syscage report web -o web.html", "syscage report web -o - > web.html"))
    p.add_argument("name")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the page (- for stdout)")
    p.add_argument("--no-denials", action="store_true", help="do not read the kernel's records")
    p.set_defaults(func=cmd_report)


def cmd_denials(config: Config, args: argparse.Namespace) -> int:
    from syscage import denials as d
    from syscage.names import validate_profile_name

    if args.name:
        validate_profile_name(args.name)
    if args.add and not args.name:
        raise SyscageError("--add needs a profile name", "syscage denials NAME --add")
    if args.add and args.follow:
        raise SyscageError("--add and --follow do not go together", "run `syscage denials NAME --add` after")
    if args.follow:
        return _follow(config, args)
    source = d.choose_source(args.source)
    resolver = d.Resolver(config.run_dir)
    raw = d.read_records(source)
    for r in raw:
        resolver.resolve(r)
    resolver.sweep(source.losses.oldest)  # notes older than anything the kernel log still holds
    resolver.save()
    since = d.since_time(args.since)
    records = d.select_records(raw, args.name, since, everything=args.all)
    rows = d.group(records)
    notes = d.notes_for(source, resolver, args.name, since, len(raw))
    if args.add:
        return _add(config, args.name, records, notes, args.json)
    if args.json:
        print(json.dumps({"source": source.describe(), "profile": args.name, "since": args.since,
                          "denials": rows, "notes": notes}, indent=2))
        return 0
    from syscage import output

    print(f"source: {source.describe()}")
    if rows:
        output.table(COLUMNS, [(r["time"], _short(r["container_id"]), r["profile"] or "-", r["mode"] or "-",
                                _what(r), r["outcome"], r["count"]) for r in rows], right=("COUNT",))
    else:
        scope = f" for profile {args.name}" if args.name else ""
        print(f"no denials recorded{scope}{' since ' + args.since if args.since else ''}")
    for note in notes:
        output.line(f"note: {note}", "yellow")
    return 0


def _short(cid: str | None) -> str:
    return "?" if not cid else cid if len(cid) <= 24 else cid[:12] + "…"


def _what(row: dict[str, Any]) -> str:
    if row["kind"] == "seccomp":
        return row["syscall"] + ("" if row.get("arch") in (None, "", "x86_64") and not row.get("compat")
                                 else f" ({row['arch']})")
    return f"apparmor {row['operation']} {row['path']}".strip()


def _add(config: Config, name: str, records: list[Any], notes: list[str], as_json: bool) -> int:
    from syscage import denials as d
    from syscage.store import ProfileStore

    names, other = d.learnable(records)
    newest: dict[str, str] = {}
    for r in records:
        if r.kind == "seccomp" and r.syscall in names:
            newest[r.syscall] = max(newest.get(r.syscall, ""), d.iso(r.time))
    store = ProfileStore.from_config(config)
    withheld = sorted(set(names) & set(config.never_allow))
    added = store.add_denied(name, newest, [r.container_id for r in records if r.container_id]) if newest else []
    if as_json:
        print(json.dumps({"profile": name, "denied": names, "added": added, "withheld": withheld,
                          "not_learnable": other, "notes": notes}, indent=2))
        return 0
    if not names:
        print(f"profile {name}: no denied syscalls to add")
    elif added:
        print(f"profile {name}: added {len(added)} syscall(s) from denials: {', '.join(added)}")
    else:
        print(f"profile {name}: every denied syscall is already in it ({', '.join(names)})")
    if withheld:
        print(f"profile {name}: not added, seccomp.never_allow names them: {', '.join(withheld)}")
    if other:
        print(f"profile {name}: cannot be learned (compat ABI or unnamed numbers: profiles are native only): "
              f"{', '.join(other)}")
    for note in notes:
        print(f"note: {note}")
    return 0


def _follow(config: Config, args: argparse.Namespace) -> int:
    from syscage import denials as d

    source = d.choose_source(args.source)
    resolver = d.Resolver(config.run_dir)
    counts: dict[tuple[str, str, str], int] = {}
    if not args.json:
        print(f"following {source.describe()} (Ctrl-C ends)", flush=True)
        for note in d.notes_for(source, resolver, args.name, time.time(), 0):
            print(f"note: {note}", flush=True)
    try:
        for record in d.follow_records(source):
            resolver.resolve(record)
            if not record.container_id and record.kind == "seccomp":
                resolver.refresh()  # a container created since we started
                resolver.resolve(record)
            if record.outcome == "allowed" or (not args.all and not record.profile) or \
                    (args.name and record.profile != args.name):
                continue
            key = (record.container_id, record.profile, record.what)
            counts[key] = counts.get(key, 0) + 1
            row = {**record.to_json(), "count": counts[key]}
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(f"{row['time']}  {_short(record.container_id)}  {record.profile or '-'}  {record.mode or '-'}  "
                      f"{_what(row)}  {record.outcome}  #{counts[key]}", flush=True)
            resolver.save()
    except KeyboardInterrupt:
        return 0
    return 0


def cmd_report(config: Config, args: argparse.Namespace) -> int:
    from syscage.report import build_report
    from syscage.store import ProfileStore

    store = ProfileStore.from_config(config)
    profile = store.read(args.name)
    if profile is None:
        raise SyscageError(f"no profile named {args.name}", "list profiles with `syscage list`")
    denied: list[dict[str, Any]] = []
    notes: list[str] = []
    if not args.no_denials:
        from syscage import denials as d

        try:
            records, source, resolver = d.collect(config.run_dir, args.name, None)
            denied = d.group(records)
            notes = d.notes_for(source, resolver, args.name, None, len(records))
        except SyscageError as exc:
            notes = [f"denials not read: {exc.what}"]
    page = build_report(profile, config, denied, notes, store.pending(args.name))
    if args.output == "-":
        sys.stdout.write(page)
    else:
        from syscage.atomic import write_atomically

        write_atomically(Path(args.output), page.encode(), 0o644)
        print(f"report for profile {args.name} written to {args.output} ({len(page.encode()) // 1024 + 1} KiB)")
    return 0
