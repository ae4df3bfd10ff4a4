"""syscage: the operator's command line. Inspect, export and accept profiles; see the tracer; run the demo."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from syscage.config import Config, load_config
from syscage.console import say_error
from syscage.errors import SyscageError

STOP_WAIT = 60.0  # seconds `syscage tracer stop` waits for the tracer to save what it watches and exit

EPILOG = """\
Profiles live under the store (paths.store in the config, /var/lib/syscage by default):
  profiles/NAME/profile.json   what was learned: syscalls with provenance, one record per run
  profiles/NAME/seccomp.json   OCI linux.seccomp object, usable as a podman/docker seccomp profile
A container opts in with the annotations io.syscage.mode=learn|enforce|complain and io.syscage.profile=NAME.
The config file is /etc/syscage/config.toml unless SYSCAGE_CONFIG names another.
"""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        config = load_config()
        return int(args.func(config, args) or 0)
    except SyscageError as exc:
        say_error(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `syscage show x | head`: not an error; keep exit-time flushing quiet too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _with_json(p: argparse.ArgumentParser, func: Any) -> None:
    """The command's --json flag and its handler."""
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=func)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="syscage", description=__doc__, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("list", help="list profiles with their syscall and run counts")
    _with_json(p, cmd_list)

    p = sub.add_parser("show", help="show one profile: completeness, syscalls, runs")
    p.add_argument("name")
    p.add_argument("--since", metavar="DATE", help="only what changed since DATE (2026-11-01, an ISO time, or 7d ago)")
    p.add_argument("--json", action="store_true",
                   help="print profile.json as stored (plus \"pending\": runs learning now, or lost, if any)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("seccomp", help="print the profile as an OCI linux.seccomp object")
    p.add_argument("name")
    p.set_defaults(func=cmd_seccomp)

    p = sub.add_parser("apparmor", help="print the profile as an AppArmor profile (checked with apparmor_parser)")
    p.add_argument("name")
    p.add_argument("--bounding", metavar="CAPS", help="the spec's capability bounding set (CAP_CHOWN,CAP_KILL,...), "
                   "used when capabilities were not traced")
    p.set_defaults(func=cmd_apparmor)

    p = sub.add_parser("accept", help="vouch for an incomplete profile so that enforce will use it")
    p.add_argument("name")
    p.set_defaults(func=cmd_accept)

    p = sub.add_parser("tracer", help="status of the tracer, or stop it")
    p.add_argument("action", choices=("status", "stop"))
    p.set_defaults(func=cmd_tracer)

    p = sub.add_parser("demo", help="learn a profile for a busybox container with runc, then enforce it")
    p.add_argument("--workdir", default=None, help="where the demo's rootfs and bundles go (default: a temp dir)")
    p.set_defaults(func=cmd_demo)

    _add_review_parsers(sub)
    _add_curate_parsers(sub)
    p = sub.add_parser("doctor", help="is this host ready for syscage? one line per check, with the fix",
                       description="Checks the runtime, libseccomp, bcc, kernel headers (and BTF), tracefs, seccomp, "
                       "cgroup v2, AppArmor, capability tracing (kprobes), containerd's syscage runtime, the store "
                       "and the tracer. Lines: ok, FAIL (syscage needs it: the fix follows), no (not needed; what "
                       "follows from it). Exit status: 0 all that syscage needs is there, 1 something is missing.",
                       **_example("syscage doctor", "syscage doctor --json | jq '.checks[] | select(.ok | not)'"))
    _with_json(p, cmd_doctor)

    from syscage.static_cli import add_static_parser

    add_static_parser(sub)
    from syscage.install import add_install_parser
    from syscage.opscli import add_parsers

    add_parsers(sub, _example)
    from syscage import travel_cli

    travel_cli.add_parsers(sub, _example)

    add_install_parser(sub)
    _add_examples(parser)
    return parser


# Examples for the --help of commands registered without any (`syscage X --help` ends with them).
EXAMPLES = {
    "list": ("syscage list", "syscage list --json | jq -r '.[] | select(.complete | not) | .name'"),
    "show": ("syscage show web", "syscage show web --since 7d", "syscage show web --json | jq '.syscalls | keys'"),
    "seccomp": ("syscage seccomp web > web-seccomp.json",
                "docker run --security-opt seccomp=web-seccomp.json IMAGE"),
    "apparmor": ("syscage apparmor web", "syscage apparmor web --bounding CAP_CHOWN,CAP_KILL"),
    "accept": ("syscage accept web    # after reading the reasons: syscage show web",),
    "tracer": ("syscage tracer status", "syscage tracer stop"),
    "demo": ("syscage demo", "syscage demo --workdir /tmp/syscage-demo"),
    "install": ("syscage install containerd", "syscage install hooks-dir /etc/containers/oci/hooks.d"),
    "install containerd": ("syscage install containerd", "syscage install containerd --write",
                           "syscage install containerd --via binary-name --write"),
    "install hooks-dir": ("syscage install hooks-dir /usr/share/containers/oci/hooks.d",),
    "install kubernetes": ("syscage install kubernetes > syscage.yaml",
                           "syscage install kubernetes --image registry.example/syscage:1 --handler syscage | "
                           "kubectl apply -f -"),
}


def _add_examples(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for name, sub in action.choices.items():
            key = f"{prefix}{name}"
            if key in EXAMPLES and "examples:" not in (sub.epilog or ""):
                block = _example(*EXAMPLES[key])
                sub.epilog = f"{sub.epilog}\n\n{block['epilog']}" if sub.epilog else block["epilog"]
                sub.formatter_class = argparse.RawDescriptionHelpFormatter
            _add_examples(sub, f"{key} ")


def _example(*lines: str) -> dict[str, Any]:
    """argparse keywords for a sub-command whose --help ends with examples."""
    return {"epilog": "examples:\n" + "\n".join(f"  {line}" for line in lines),
            "formatter_class": argparse.RawDescriptionHelpFormatter}


EXIT_CODES = "exit status: 0 {zero}, 1 {one}, 2 bad input (one line on stderr)."


def _add_review_parsers(sub: Any) -> None:
    p = sub.add_parser("diff", help="what one profile or seccomp file allows that the other does not",
                       description="Compare two policies by syscall. Each of A and B is a profile name, "
                       "a profile.json or an OCI/Docker seccomp JSON file (rules with argument or capability "
                       "conditions count as conditionally allowed). " + EXIT_CODES.format(zero="same", one="different"),
                       **_example("syscage diff web web-canary",
                                  "syscage diff web tests/fixtures/docker-default-seccomp.json",
                                  "syscage diff a.json b.json --json | jq '.only_a[].syscall'"))
    p.add_argument("a")
    p.add_argument("b")
    _with_json(p, cmd_diff)

    p = sub.add_parser("check", help="CI gate: fail if the profile allows anything FILE does not",
                       description="Exit 1 when profile NAME allows a syscall the reference FILE does not allow at "
                       "all. A syscall FILE allows only under conditions passes (its conditions stay in force when "
                       "FILE is the container's own filter: enforce intersects with it) unless --strict. "
                       + EXIT_CODES.format(zero="within FILE", one="NAME allows more"),
                       **_example("syscage check web --against /etc/docker/seccomp.json",
                                  "syscage check web --against docker-default.json --strict --json"))
    p.add_argument("name")
    p.add_argument("--against", required=True, metavar="FILE", help="reference: seccomp JSON, profile.json or name")
    p.add_argument("--strict", action="store_true", help="conditionally allowed in FILE counts as not allowed")
    _with_json(p, cmd_check)

    p = sub.add_parser("lint", help="flag risky syscalls a profile allows, with the run that first needed each",
                       description="Flags syscalls Docker's default seccomp profile denies (or allows only with a "
                       "capability it does not grant by default), syscalls tied to kernel CVEs by the Confine study "
                       "(keyctl, add_key, request_key, userfaultfd, perf_event_open, bpf, unshare, pivot_root, "
                       "move_pages, inotify_add_watch, clock_nanosleep, waitid, setsockopt), and any named in "
                       "seccomp.never_allow. " + EXIT_CODES.format(zero="no findings", one="findings"),
                       **_example("syscage lint web", "syscage lint web --json | jq '.findings[].syscall'"))
    p.add_argument("name")
    _with_json(p, cmd_lint)


def _add_curate_parsers(sub: Any) -> None:
    p = sub.add_parser("rm", help="remove a profile (asks first unless --yes)",
                       description="Remove profile NAME from the store, atomically, under its lock. Refused while a "
                       "container learns into it, and on a non-terminal stdin without --yes.",
                       **_example("syscage rm web", "syscage rm web --yes"))
    p.add_argument("name")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_rm)

    p = sub.add_parser("prune", help="drop syscalls no run has needed for a while",
                       description="Drop the syscalls whose last_seen is older than --unused-for, and list them. "
                       "Never pruned: the seccomp.always_allow floor and runtime-base entries (the runtime needs "
                       "them between filter load and exec; no run of the workload shows them as used). The prune "
                       "is recorded in the profile's `pruned` history (see `syscage show NAME --since`).",
                       **_example("syscage prune web --unused-for 30d --dry-run",
                                  "syscage prune web --unused-for 2w --json"))
    p.add_argument("name")
    p.add_argument("--unused-for", required=True, metavar="AGE", help="30d, 12h, 2w, 90m or 45s")
    p.add_argument("--dry-run", action="store_true", help="list what would be pruned, change nothing")
    _with_json(p, cmd_prune)


def cmd_rm(config: Config, args: argparse.Namespace) -> int:
    store = _store(config)
    profile = store.read(args.name)
    if not args.yes:
        if not sys.stdin.isatty():
            raise SyscageError(f"not removing profile {args.name}: stdin is not a terminal to ask on",
                               "pass --yes to remove it without asking")
        what = f"{len(profile['syscalls'])} syscalls, {profile.get('runs_total', len(profile['runs']))} runs" \
            if profile else "no profile.json"
        answer = input(f"remove profile {args.name} ({what})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not removed")
            return 1
    store.remove(args.name, _live(config))
    print(f"profile {args.name} removed")
    return 0


def cmd_prune(config: Config, args: argparse.Namespace) -> int:
    from syscage.curate import iso, parse_duration, utc_now_dt

    cutoff = iso(utc_now_dt() - parse_duration(args.unused_for))
    pruned = _store(config).prune(args.name, cutoff, args.dry_run)
    if args.json:
        print(json.dumps({"profile": args.name, "last_seen_before": cutoff, "dry_run": args.dry_run,
                          "pruned": pruned}, indent=2))
    elif not pruned:
        print(f"profile {args.name}: nothing last seen before {cutoff}")
    else:
        verb = "would prune" if args.dry_run else "pruned"
        print(f"profile {args.name}: {verb} {len(pruned)} syscall(s) last seen before {cutoff}: {', '.join(pruned)}")
    return 0


def cmd_doctor(config: Config, args: argparse.Namespace) -> int:
    from syscage import __version__
    from syscage.doctor import report, run_checks

    checks = run_checks(config)
    result = report(checks)
    if args.json:
        print(json.dumps({"version": __version__, "config": str(config.source or "built-in defaults"), **result},
                         indent=2))
    else:
        print(f"syscage {__version__}, config {config.source or 'built-in defaults'}")
        from syscage import output

        for check in checks:
            output.line(check.line())
    return 0 if result["ok"] else 1


def show_since(config: Config, args: argparse.Namespace) -> int:
    from syscage.curate import changes_since, format_changes, parse_when

    since = parse_when(args.since)
    profile = _store(config).read(args.name)
    if profile is None:
        raise SyscageError(f"no profile named {args.name}", "list profiles with `syscage list`")
    changes = changes_since(profile, since)
    print(json.dumps(changes, indent=2) if args.json else format_changes(changes))
    return 0


def _bad_input(exc: SyscageError) -> int:
    say_error(str(exc))
    return 2


def cmd_diff(config: Config, args: argparse.Namespace) -> int:
    from syscage.review import diff, format_diff, load_policy
    from syscage.syscalls import native_arch

    try:
        arch, store = native_arch(), _store(config)
        result = diff(load_policy(args.a, store, config.always_allow, arch),
                      load_policy(args.b, store, config.always_allow, arch))
    except SyscageError as exc:
        return _bad_input(exc)
    from syscage import output

    if not args.json and output.fancy():
        output.diff_tables(result)
    else:
        print(json.dumps(result, indent=2) if args.json else format_diff(result))
    return 1 if result["only_a"] or result["only_b"] or result["conditional"] else 0


def cmd_check(config: Config, args: argparse.Namespace) -> int:
    from syscage.review import check, load_policy
    from syscage.syscalls import native_arch

    try:
        arch, store = native_arch(), _store(config)
        profile = load_policy(args.name, store, config.always_allow, arch)
        reference = load_policy(args.against, store, config.always_allow, arch)
    except SyscageError as exc:
        return _bad_input(exc)
    denied, conditional = check(profile, reference)
    failing = denied + (sorted(conditional) if args.strict else [])
    if args.json:
        print(json.dumps({"profile": profile.label, "against": reference.label, "ok": not failing,
                          "not_allowed": denied, "conditionally_allowed": conditional}, indent=2))
        return 1 if failing else 0
    more = [n for n in conditional if n not in failing]
    cond = f" ({len(more)} only conditionally there: {', '.join(more)})" if more else ""
    if failing:
        print(f"FAIL: {profile.label} allows {len(failing)} syscall(s) {reference.label} does not: "
              f"{', '.join(failing)}{cond}")
    else:
        print(f"ok: {profile.label} allows nothing {reference.label} does not{cond}")
    return 1 if failing else 0


def cmd_lint(config: Config, args: argparse.Namespace) -> int:
    from syscage.review import lint

    try:
        profile = _store(config).read(args.name)
    except SyscageError as exc:
        return _bad_input(exc)
    if profile is None:
        return _bad_input(SyscageError(f"no profile named {args.name}", "list profiles with `syscage list`"))
    findings = lint(profile, config.always_allow, config.never_allow)
    if args.json:
        print(json.dumps({"profile": args.name, "findings": findings}, indent=2))
    elif not findings:
        print(f"profile {args.name}: no findings ({len(profile['syscalls'])} syscalls)")
    elif _fancy():
        from syscage.output import lint_table

        lint_table(args.name, findings)
    else:
        print(f"profile {args.name}: {len(findings)} finding(s)")
        for f in findings:
            print(f"  {f['syscall']:20} {f['rule']:31} {f['detail']}; {f['where']}")
    return 1 if findings else 0


def _fancy() -> bool:
    """A terminal, so tables and colour (rich); plain text otherwise (syscage.output)."""
    from syscage.output import fancy

    return fancy()


def _store(config: Config):  # type: ignore[no-untyped-def]
    from syscage.store import ProfileStore

    return ProfileStore.from_config(config)


def _live(config: Config) -> str | None:
    from syscage.liveness import live_instance

    return live_instance(config.run_dir)


def cmd_list(config: Config, args: argparse.Namespace) -> int:
    """A profile with a lost pending run is incomplete (enforce refuses it); one learning now says so."""
    store, live = _store(config), _live(config)
    rows: list[dict[str, Any]] = []
    for name in store.names():
        try:
            p = store.read(name)
            pending = store.pending(name)
            lost = sum(1 for run in pending if _lost(run, live))
            row = {"name": name, "complete": bool(p and p["complete"]) and not lost, "lost_runs": lost,
                   "learning_now": len(pending) - lost}
            row.update({"syscalls": len(p["syscalls"]), "runs": p.get("runs_total", len(p["runs"])),
                        "updated": p["updated"]} if p else {"syscalls": 0, "runs": 0, "updated": "-"})
            row.update(_convergence_row(p, config))
            rows.append(row)
        except SyscageError as exc:
            rows.append({"name": name, "error": str(exc)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no profiles in {store.profiles}")
        return 0
    if _fancy():
        from syscage.output import list_table

        list_table(rows)
        return 0
    print(f"{'PROFILE':32} {'STATUS':10} {'SYSCALLS':>8} {'RUNS':>5} {'LEARNING':13}  UPDATED")
    for r in rows:
        if "error" in r:
            print(f"{r['name']:32} {'CORRUPT':10} {'-':>8} {'-':>5} {'-':13}  {r['error']}")
        else:
            status = "complete" if r["complete"] else "INCOMPLETE"
            notes = [f"{r['lost_runs']} run(s) lost"] * bool(r["lost_runs"]) + \
                [f"{r['learning_now']} learning now"] * bool(r["learning_now"])
            learning = "converged" if r["converged"] else "NOT converged"
            notes += [f"{len(r['chance_dependent'])} chance-dependent syscall(s)"] * bool(r["chance_dependent"])
            print(f"{r['name']:32} {status:10} {r['syscalls']:>8} {r['runs']:>5} {learning:13}  {r['updated']}"
                  + (f"  ({', '.join(notes)})" if notes else ""))
    return 0


def _convergence_row(profile: dict[str, Any] | None, config: Config) -> dict[str, Any]:
    """Has learning converged (syscage.convergence, the rule in [convergence]), and which syscalls were seen
    only by chance."""
    from syscage.convergence import rule_of, state

    if profile is None:
        return {"converged": False, "runs_since_new": 0, "chance_dependent": []}
    now = state(profile, rule_of(config))
    return {"converged": now.converged, "runs_since_new": now.runs_since_new,
            "minutes_since_new": round(now.seconds_since_new / 60, 2), "chance_dependent": [n for n, _ in now.chance]}


def cmd_show(config: Config, args: argparse.Namespace) -> int:
    from syscage.store import describe_lost

    if getattr(args, "since", None):
        return show_since(config, args)

    store, live = _store(config), _live(config)
    profile = store.read(args.name)
    pending = store.pending(args.name)
    if profile is None and not pending:
        raise SyscageError(f"no profile named {args.name}", "list profiles with `syscage list`")
    lost = [run for run in pending if _lost(run, live)]
    if args.json:  # profile.json as stored, plus its pending runs if it has any
        extra = {"pending": [{**run, "lost": _lost(run, live)} for run in pending]} if pending else {}
        print(json.dumps({**(profile or {}), **extra}, indent=2, sort_keys=True))
        return 0
    if profile is None:
        print(f"profile {args.name}: nothing recorded yet")
    else:
        print(f"profile {profile['name']} ({profile['arch']}), revision {profile.get('revision', 0)}, "
              f"updated {profile['updated']}")
    if profile and profile["complete"] and not lost:
        print("status: complete")
    else:
        print("status: INCOMPLETE (enforce refuses it until you re-learn or `syscage accept` it)")
        for reason in (profile or {}).get("incomplete_reasons", []):
            print(f"  - {reason}")
        for run in lost:
            print(f"  - run of {run.get('container_id', '?')} (watched since {run.get('started', '?')}) was lost: "
                  f"{describe_lost(run)}")
    for run in pending:
        if not _lost(run, live):
            print(f"learning now: {run.get('container_id')} since {run.get('started')}")
    if profile is None:
        return 0
    from syscage.convergence import rule_of, seen_runs, state

    learning = state(profile, rule_of(config))
    print(f"learning: {learning.summary()}")
    if learning.chance:
        print(f"chance-dependent (seen in fewer than {learning.rule.chance_share:.0%} of {learning.runs} runs: other "
              "workloads may need more like them): "
              + ", ".join(f"{name} ({seen}/{learning.runs})" for name, seen in learning.chance))
    chance = {name for name, _ in learning.chance}
    if _fancy():
        from syscage.output import syscalls_table

        syscalls_table(profile, chance)
    else:
        print(f"syscalls ({len(profile['syscalls'])}):")
        for name, entry in sorted(profile["syscalls"].items()):
            flag = "  chance-dependent" if name in chance else ""
            print(f"  {name:24} runs={entry['runs']:<4} seen={seen_runs(entry):<4} {','.join(entry['sources']):20} "
                  f"last={entry['last_seen']}{flag}")
    _show_coverage(profile, config)
    from syscage.arguments import describe

    for line in describe(profile):
        print(line)
    for added in profile.get("from_denials", [])[-5:]:
        print(f"learned from denials at {added['at']}: {', '.join(added['syscalls']) or 'nothing new'} "
              f"(containers {', '.join(added['containers']) or '?'})")
    if profile["unresolved_syscalls"]:
        print(f"unnamed syscall numbers (cannot be allowed): {', '.join(sorted(profile['unresolved_syscalls']))}")
    total = profile.get("runs_total", len(profile["runs"]))
    shown = f"the last {len(profile['runs'])} of {total}" if total > len(profile["runs"]) else str(total)
    if _fancy():
        from syscage.output import runs_table

        runs_table(profile, f"runs ({shown})")
        return 0
    print(f"runs ({shown}):")
    for run in profile["runs"]:
        state = "ok" if run["complete"] else "INCOMPLETE: " + "; ".join(run["problems"])
        if run.get("withheld"):
            state += f"; needed {', '.join(run['withheld'])}, withheld by seccomp.never_allow"
        print(f"  {run['stopped']} {run['container_id']:24} cutover={run['cutover']:8} "
              f"syscalls={run['syscall_count']:<4} {state}")
    return 0


def _show_coverage(profile: dict[str, Any], config: Config) -> None:
    """What seccomp.coverage adds beyond the learned syscalls, and why; and the static set's size."""
    from syscage.coverage import additions, static_set

    static = static_set(profile)
    if static is not None:
        binaries = profile["static"].get("binaries", {})
        print(f"static set: {len(static)} syscalls the code of {len(binaries)} binaries can make "
              f"({len(set(static) - set(profile['syscalls']))} not learned)")
    _show_static_gaps(profile)
    added = {n: why for n, why in additions(profile, config.coverage).items() if n not in config.never_allow}
    if config.coverage == "learned":
        return
    print(f"added by seccomp.coverage = {config.coverage} ({len(added)}):")
    for name, why in sorted(added.items()):
        print(f"  {name:24} {why}")


def _show_static_gaps(profile: dict[str, Any]) -> None:
    """How many runs the automatic analysis covers, and what it could not analyse (counted, never guessed)."""
    static = profile.get("static")
    if not isinstance(static, dict) or "runs_analysed" not in static:
        return
    total = profile.get("runs_total", len(profile["runs"]))
    print(f"static analysis: the programs of {static['runs_analysed']} of {total} runs "
          "(a run whose analysis is still going on, or was cut short by a tracer stop, is not counted)")
    unresolved = static.get("unresolved") or {}
    if static.get("unresolved_total"):
        first = " (the first ones)" if len(unresolved) < static["unresolved_total"] else ""
        print(f"  not analysed: {static['unresolved_total']} path(s){first}:")
        for path, why in sorted(unresolved.items()):
            print(f"    {path}: {why}")
    if static.get("paths_lost"):
        print(f"  the tracer could not record {static['paths_lost']} paths in these runs (relative, too long, "
              "unreadable or a full table): a program exec'd by one of them is not analysed")
    if static.get("absent"):
        print(f"  exec'd but not in the rootfs (failed execs, such as a PATH search): {', '.join(static['absent'])}")


def _lost(run: dict[str, Any], live: str | None) -> bool:
    from syscage.store import lost_now

    return lost_now(run, live)


def cmd_seccomp(config: Config, args: argparse.Namespace) -> int:
    from syscage.seccomp import render_profile

    profile = _store(config).read(args.name)
    if profile is None:
        raise SyscageError(f"no profile named {args.name}", "list profiles with `syscage list`")
    print(json.dumps(render_profile(profile, config.seccomp_errno, config.always_allow, config.coverage,
                                    config.never_allow), indent=2))
    return 0


def cmd_apparmor(config: Config, args: argparse.Namespace) -> int:
    from syscage.apparmor import render_checked

    profile = _store(config).read(args.name)
    if profile is None:
        raise SyscageError(f"no profile named {args.name}", "list profiles with `syscage list`")
    bounding = None if args.bounding is None else [c for c in args.bounding.split(",") if c.strip()]
    sys.stdout.write(render_checked(profile, bounding))
    return 0


def cmd_accept(config: Config, args: argparse.Namespace) -> int:
    profile = _store(config).accept(args.name, _live(config))
    print(f"profile {args.name} accepted as complete ({len(profile['syscalls'])} syscalls)")
    return 0


def cmd_tracer(config: Config, args: argparse.Namespace) -> int:
    import signal

    from syscage.protocol import STATUS, TracerUnavailable, request, tracer_pid

    try:
        status = request(config, STATUS, timeout=5)
    except TracerUnavailable:
        print(f"tracer: not running (socket {config.tracer_socket})")
        return 0 if args.action == "stop" else 3
    if args.action == "status":
        print(json.dumps(status, indent=2))
        return 0
    # Signal the pid the kernel gives for the socket's listener here: the one it reports is its own PID
    # namespace's (a tracer started inside a namespace says 1).
    pid = tracer_pid(config)
    if pid is None:
        raise SyscageError(f"cannot tell the tracer's pid from here (instance {status.get('instance')}, its own "
                           f"pid {status.get('pid')})", "stop it from its own PID namespace, or with its service")
    os.kill(pid, signal.SIGTERM)
    # It saves the runs of the containers it still watches (as incomplete) before it lets go of its lock.
    from syscage.liveness import tracer_lock_held

    deadline = time.monotonic() + STOP_WAIT
    while tracer_lock_held(config.run_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    watching = status.get("watching") or []
    if tracer_lock_held(config.run_dir):
        print(f"tracer {status['instance']} (pid {pid}) asked to stop; still running after {STOP_WAIT:g}s")
        return 0
    saved = f"; {len(watching)} still-watched container run(s) saved as incomplete" if watching else ""
    print(f"tracer {status['instance']} (pid {pid}) stopped{saved}")
    return 0


def cmd_demo(config: Config, args: argparse.Namespace) -> int:
    from syscage.demo import run_demo

    return run_demo(config, args.workdir)


if __name__ == "__main__":
    sys.exit(main())
