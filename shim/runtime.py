"""syscage-runtime: a runc-compatible CLI in front of the real runtime.

Every runtime call passes through here. Only `create` and `run` of a bundle whose config.json carries
an io.syscage.mode annotation do any work (spec modifiers, then the same argv to the real runtime), and
`delete` of a container created learning (the real runtime deletes it, then its run is recorded);
everything else is an immediate exec. This module imports only the standard library and never
writes to stdout: containerd parses the runtime's stdout.
"""

from __future__ import annotations

import os
import sys

from syscage.console import say_error
from syscage.markers import container_exists, marker_path, remove_marker
from syscage.shim.argv import CreateCall, Unparsable, dialect, find_operand, parse_create, parse_global
from syscage.shim.fastconfig import read_keys
from syscage.shim.guard import exec_runtime
from syscage.standard import LOOP_GUARD

MARKER = b"io.syscage.mode"
# A bundle with either of these takes the slow path even without the annotation: hooks syscage-runtime
# wrote on an earlier learning run (exactly as it writes them) must go now that syscage is off.
SLOW_PATH_TAGS = (MARKER, b'"args": ["syscage-hook", ', b'"syscage-prestart-relay"', b'"syscage-denials-note"')


PROGRAM = "syscage-runtime"


def main() -> None:
    args = sys.argv[1:]
    if os.environ.get(LOOP_GUARD):
        say_error("runtime.path points back at syscage-runtime; set it to the real runc or crun", PROGRAM)
        sys.exit(1)
    keys = read_keys()
    runtime = keys[("runtime", "path")]
    flavour = dialect(runtime)
    try:
        sub, index, options = parse_global(args, flavour)
        call = parse_create(args, index, flavour) if sub in ("create", "run") else None
    except Unparsable as exc:
        if {"create", "run"} & set(args) and any(_tagged(path) for path in _candidate_specs(args)):
            # A command line we cannot read, and a bundle it may name that asks for syscage: never run unchecked.
            say_error(f"{exc} in a command line that may create a container; syscage cannot tell which bundle the "
                      "runtime would use", PROGRAM)
            sys.exit(1)
        sub, index, options, call = None, -1, {}, None  # nothing of syscage's: the runtime reports it (or runs it)
    if call is not None:
        create(runtime, args, sub == "run", call, options, keys[("paths", "run_dir")])
    elif sub == "delete":
        delete(runtime, args, find_operand(args, index), options.get("root"), keys[("paths", "run_dir")])
    exec_runtime(runtime, args)
    sys.exit(127)


def create(runtime: str, args: list[str], run: bool, call: CreateCall, options: dict[str, str], run_dir: str) -> None:
    """`create` or `run`: a bundle that asks for syscage (or carries what an earlier run of it wrote) is
    prepared, then the runtime runs as our child or is exec'd; returns for a plain exec of the runtime."""
    container_id, root = call.container_id, options.get("root")
    marker = marker_path(run_dir, root, container_id)
    if marker and container_id:
        exists = container_exists(runtime, root, container_id)
        if exists:
            marker = None  # the runtime will refuse this id; the marker there is the live container's
        elif exists is False:
            remove_marker(marker)  # left by an earlier container of this id (a crash): not this one's
    if run:
        marker = None  # `run` deletes the container itself: its poststop hook records the run
    try:
        with open(call.config, "rb") as f:
            raw = f.read()
    except OSError:
        return  # let the runtime report the missing bundle in its own words
    if not any(tag in raw for tag in SLOW_PATH_TAGS):
        return
    if call.config != os.path.join(call.bundle, "config.json"):
        say_error(f"container {container_id}: its spec {call.config} is not the bundle's config.json; syscage "
                  "prepares only BUNDLE/config.json (drop --config)", PROGRAM)
        sys.exit(1)
    from syscage.shim.prepare import CreateRequest, prepare_bundle

    prepared = prepare_bundle(CreateRequest(call.bundle, raw, container_id, options.get("log"),
                                            options.get("log-format"), marker, root))
    if prepared.code:
        sys.exit(prepared.code)
    if prepared.serve is not None:
        from syscage.shim.child import exit_like

        code = prepared.serve(runtime, args)
        if code and marker and container_id and container_exists(runtime, root, container_id) is False:
            from syscage.shim.finish import release_failed_create

            release_failed_create(marker, container_id, root)  # no container: nothing to record
        exit_like(code)


def delete(runtime: str, args: list[str], container_id: str | None, root: str | None, run_dir: str) -> None:
    """`delete` of a container created learning: the runtime deletes it as our child, then its run is recorded
    (syscage.shim.finish); returns for a plain exec of the runtime."""
    marker = marker_path(run_dir, root, container_id)
    if not (marker and container_id and os.path.exists(marker)):
        return
    if container_exists(runtime, root, container_id) is not False:
        from syscage.shim.child import exit_like
        from syscage.shim.finish import delete_and_record

        exit_like(delete_and_record(runtime, args, marker, container_id, root))
    remove_marker(marker)  # no such container: a stale marker, nothing to record


def _candidate_specs(args: list[str]) -> list[str]:
    """Every spec an unreadable command line could make the runtime use: the working directory's, and that
    of any argument (or --opt=value) that is a directory, or a file itself (crun's --config)."""
    found = [os.path.join(os.getcwd(), "config.json")]
    for arg in args:
        for value in (arg, arg.split("=", 1)[-1]):
            if os.path.isdir(value):
                found.append(os.path.join(value, "config.json"))
            elif os.path.isfile(value):
                found.append(value)
    return found


def _tagged(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return False
    return any(tag in raw for tag in SLOW_PATH_TAGS)


if __name__ == "__main__":
    main()
