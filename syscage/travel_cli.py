"""`syscage export`, `syscage import` and `syscage snapshot`: profiles that leave their node. Registered by
syscage.cli."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from syscage.config import Config


def add_parsers(sub: Any, example: Callable[..., dict[str, Any]]) -> None:
    from syscage.travel import FORMATS, KUBELET_ROOT

    p = sub.add_parser(
        "export", help="write a profile for other tools or nodes: oci, kubelet, spo (Security Profiles Operator), "
        "profile (for `syscage import`)",
        description="oci: the seccomp JSON enforce uses (podman/docker --security-opt seccomp=FILE). kubelet: writes "
        "it to <kubelet root>/seccomp/syscage/NAME.json and prints the pod's securityContext.seccompProfile. spo: a "
        "SeccompProfile manifest (and an AppArmorProfile when AppArmor was traced). profile: the node's profile.json, "
        "each run naming its node, for `syscage import` on another node. An incomplete or unconverged profile is "
        "refused by oci, kubelet and spo unless --force (the output then says it is partial).",
        **example("syscage export web --format oci -o web.json",
                  "syscage export web --format kubelet", "syscage export web --format spo | kubectl apply -f -",
                  "syscage export web --format profile -o web-node1.json"))
    p.add_argument("name")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("-o", "--output", metavar="PATH", help="write there (atomically) instead of stdout")
    p.add_argument("--kubelet-root", default=KUBELET_ROOT, metavar="DIR", help=f"default {KUBELET_ROOT}")
    p.add_argument("--force", action="store_true", help="export an incomplete or unconverged profile, marked partial")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "import", help="merge profile.json files from other nodes (or an OCI seccomp JSON) into the store",
        description="The union of what every file saw; each run keeps its node; an incomplete run stays incomplete. "
        "Importing the same files again, or in another order, gives the same profile.json. Every file is checked "
        "before anything is written.",
        **example("syscage import web-node1.json web-node2.json",
                  "syscage import --name web docker-default.json"))
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--name", help="the profile (required for an OCI seccomp JSON; checked for profile.json files)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser(
        "snapshot", help="merge what learning containers did so far into their profiles now (a checkpoint)",
        description="The tracer does this every tracer.checkpoint_interval seconds. Each container's run appears "
        "in its profile marked in progress; its final record replaces it.",
        **example("syscage snapshot web", "syscage snapshot --all"))
    p.add_argument("name", nargs="?", help="the profile whose learning containers to checkpoint")
    p.add_argument("--all", action="store_true", help="every learning container")
    p.set_defaults(func=cmd_snapshot)


def cmd_export(config: Config, args: argparse.Namespace) -> int:
    from syscage.travel import export

    text = export(config, args.name, args.format, args.output, args.kubelet_root, args.force)
    sys.stdout.write(text)
    return 0


def cmd_snapshot(config: Config, args: argparse.Namespace) -> int:
    from syscage.errors import SyscageError
    from syscage.protocol import TracerUnavailable, request

    if bool(args.name) == bool(args.all):
        raise SyscageError("name one profile or pass --all", "syscage snapshot NAME, or syscage snapshot --all")
    try:
        reply = request(config, {"op": "checkpoint", "profile": args.name}, timeout=120)
    except TracerUnavailable:
        raise SyscageError(f"no tracer is running (socket {config.tracer_socket}): no container is learning",
                           "start a learning container first") from None
    if not reply.get("ok") and not reply.get("failed"):
        raise SyscageError(f"the tracer refused: {reply.get('error', 'unknown error')}", "try again")
    done, failed = reply.get("checkpointed", []), reply.get("failed", [])
    print(f"checkpointed {len(done)} learning container(s)" + (f": {', '.join(done)}" if done else ""))
    for cid in failed:
        print(f"could not checkpoint {cid} (see the syscage log)")
    return 1 if failed else 0


def cmd_import(config: Config, args: argparse.Namespace) -> int:
    from syscage.travel import import_files

    if args.name:
        from syscage.names import validate_profile_name

        validate_profile_name(args.name)
    name, changed, merged = import_files(config, args.files, args.name)
    nodes = sorted({str(r.get("node", "?")) for r in merged["runs"]})
    if args.json:
        print(json.dumps({"profile": name, "changed": changed, "syscalls": len(merged["syscalls"]),
                          "complete": merged["complete"], "nodes": nodes}, indent=2))
        return 0
    state = "complete" if merged["complete"] else "INCOMPLETE"
    verb = "merged" if changed else "unchanged (already had everything)"
    print(f"profile {name}: {verb}; {len(merged['syscalls'])} syscalls, {state}, runs from {', '.join(nodes)}")
    return 0
