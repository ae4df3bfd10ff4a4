"""Build the C launchers that are installed as `syscage-runtime` and `containerd-shim-syscage-v2` (setup.py calls
this at install time; the tests build their own copies). Each decides, without Python, that a call has nothing for
syscage to do and execs the real program; otherwise it execs its Python entry (NAME-py) installed beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAUNCHERS = {"syscage-runtime": "launcher.c", "containerd-shim-syscage-v2": "shim_launcher.c"}
CFLAGS = ["-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2"]


class BuildError(Exception):
    """The compiler is missing or refused the source."""


def build(name: str, out: Path, extra_flags: tuple[str, ...] = (), source_dir: Path = HERE) -> Path:
    """Compile the launcher `name` into `out` (mode 0755); BuildError saying why not."""
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise BuildError(f"no C compiler to build {name} (install gcc: `make deps` does)")
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [cc, *CFLAGS, *extra_flags, "-o", str(out), str(source_dir / LAUNCHERS[name])]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise BuildError(f"building {name} failed: {' '.join(cmd)}\n{done.stderr.strip()[-2000:]}")
    out.chmod(0o755)
    return out
