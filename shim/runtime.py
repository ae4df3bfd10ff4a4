"""syscage-runtime: a runc-compatible CLI in front of the real runtime.

Every runtime call passes through here. Only `create` and `run` of a bundle whose config.json carries
an io.syscage.mode annotation do any work (spec modifiers, then the same argv to the real runtime);
everything else is an immediate exec. This module imports only the standard library and never
writes to stdout: containerd parses the runtime's stdout.
"""

from __future__ import annotations

import os
import sys

from syscage.shim.argv import find_bundle, find_container_id, find_global_option, find_subcommand
from syscage.shim.fastconfig import read_keys

MARKER = b"io.syscage.mode"
LOOP_GUARD = "SYSCAGE_RUNTIME_WRAPPED"


def main() -> None:
    args = sys.argv[1:]
    if os.environ.get(LOOP_GUARD):
        sys.stderr.write("syscage-runtime: error: runtime.path points back at syscage-runtime; "
                         "set it to the real runc or crun\n")
        sys.exit(1)
    runtime = read_keys()[("runtime", "path")]
    sub, index = find_subcommand(args)
    if sub in ("create", "run"):
        bundle = find_bundle(args, index)
        try:
            with open(os.path.join(bundle, "config.json"), "rb") as f:
                raw = f.read()
        except OSError:
            raw = b""  # let the runtime report the missing bundle in its own words
        if MARKER in raw:
            from syscage.shim.prepare import prepare_bundle

            code = prepare_bundle(bundle, raw, find_container_id(args, index),
                                  find_global_option(args, "log"), find_global_option(args, "log-format"))
            if code:
                sys.exit(code)
    os.environ[LOOP_GUARD] = "1"
    try:
        os.execv(runtime, [runtime, *args])
    except OSError as exc:
        sys.stderr.write(f"syscage-runtime: error: cannot run the real runtime {runtime}: {exc.strerror}; "
                         "set runtime.path in the syscage config\n")
        sys.exit(127)


if __name__ == "__main__":
    main()
