"""containerd-shim-syscage-v2: the shim containerd starts for the io.containerd.syscage.v2 runtime.

Mechanism: it execs the stock containerd-shim-runc-v2 with the same arguments, its PATH led by a
directory whose `runc` is syscage-runtime. The runc shim runs plain `runc` from PATH whenever no
BinaryName option is set (the case for this handler), and its long-lived instance inherits the
environment, so every runtime call of these containers goes through syscage-runtime, which then
execs the real runtime from the syscage config (an absolute path, so there is no loop).
"""

from __future__ import annotations

import os
import sys

from syscage.console import say_error
from syscage.shim.fastconfig import read_keys
from syscage.standard import STANDARD_PATH

PROGRAM = "containerd-shim-syscage-v2"
RUNC_SHIM = "containerd-shim-runc-v2"


def shim_path_dir() -> str:
    """A directory holding `runc` -> syscage-runtime (made on first use, atomically)."""
    here = os.path.dirname(os.path.abspath(sys.argv[0]))
    wrapper = os.path.join(here, "syscage-runtime")
    directory = os.path.join(read_keys()[("paths", "run_dir")], "shim-path")
    link = os.path.join(directory, "runc")
    try:
        if os.readlink(link) == wrapper:
            return directory
    except OSError:
        pass
    os.makedirs(directory, mode=0o755, exist_ok=True)
    tmp = f"{link}.{os.getpid()}.tmp"
    os.symlink(wrapper, tmp)
    os.replace(tmp, link)
    return directory


def find_runc_shim(path: str, skip: str) -> str | None:
    for entry in path.split(os.pathsep):
        if not entry or os.path.abspath(entry) == skip:
            continue
        candidate = os.path.join(entry, RUNC_SHIM)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def main() -> None:
    try:
        directory = shim_path_dir()
    except OSError as exc:
        say_error(f"cannot prepare its runc directory: {exc}", PROGRAM)
        sys.exit(1)
    path = os.environ.get("PATH", STANDARD_PATH)
    shim = find_runc_shim(path, directory)
    if shim is None:
        say_error(f"{RUNC_SHIM} not found in PATH; install containerd", PROGRAM)
        sys.exit(1)
    os.environ["PATH"] = directory + os.pathsep + path
    try:
        os.execv(shim, [shim, *sys.argv[1:]])
    except OSError as exc:
        say_error(f"cannot run {shim}: {exc.strerror}", PROGRAM)
        sys.exit(1)


if __name__ == "__main__":
    main()
