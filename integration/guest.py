"""The real-kernel lane: Debian's own kernel booted under qemu (virtme-ng) over the host's filesystem.

This host's kernel has no AppArmor, no kprobes and refuses fentry (lockdown). Debian's stock kernel has all
three; virtme-ng boots it in a few seconds of wall time (software emulation: a KVM guest hangs here) with
the host's files visible read-only, `/tmp` private, and one shared writable directory for results. The
tests that need such a kernel live in integration/realkernel/ and run there, all in one boot.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

# Set inside the guest: integration/realkernel/ is collected only there.
IN_GUEST_ENV = "SYSCAGE_REAL_KERNEL"
BOOT_MEMORY = "2G"
CHECKOUT = Path(__file__).resolve().parent.parent


class LaneUnavailable(Exception):
    """The guest cannot be booted here; the message says why and what to install."""


@dataclass
class GuestRun:
    returncode: int
    output: str
    seconds: float
    started: float  # wall-clock time (time.time) when qemu was started


def guest_kernel() -> str:
    """Debian's newest stock kernel image (`linux-image-amd64`), whose modules and headers are on the host."""
    images = sorted(glob.glob("/boot/vmlinuz-*-amd64"), key=_version_key)
    if not images:
        raise LaneUnavailable("no Debian kernel image in /boot: apt-get install linux-image-amd64 (make deps does)")
    kernel = images[-1]
    release = Path(kernel).name.removeprefix("vmlinuz-")
    if not Path(f"/lib/modules/{release}/build").exists():
        raise LaneUnavailable(f"no headers for {release} (bcc needs them in the guest): "
                              "apt-get install linux-headers-amd64 (make deps does)")
    return kernel


def vng_binary() -> str:
    """virtme-ng's `vng`: from the checkout's own lane venv (`make lane-venv`; kept apart so that its
    dependencies never load into syscage's venv), or PATH."""
    own = CHECKOUT / ".venv-lane" / "bin" / "vng"
    found = str(own) if own.exists() else shutil.which("vng")
    if not found:
        raise LaneUnavailable("virtme-ng is not installed: run `make lane-venv` (make test does)")
    if not shutil.which("qemu-system-x86_64"):
        raise LaneUnavailable("qemu is not installed: apt-get install qemu-system-x86 (make deps does)")
    return found


def run_in_guest(command: str, results: Path, timeout: float = 600, cwd: Path | None = None) -> GuestRun:
    """Boot the guest once and run `command` (a shell line) as root in `cwd`; `results` is shared writable.

    The guest's own output (kernel messages, virtme's) is mixed with the command's: callers that need the
    command's result write it into `results`."""
    kernel, vng = guest_kernel(), vng_binary()
    results.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, IN_GUEST_ENV: "1"}
    inner = f"cd {shlex.quote(str(cwd or Path.cwd()))} && export {IN_GUEST_ENV}=1 && {command}"
    # The virtme launchers it runs (virtme-run) sit beside vng.
    env["PATH"] = f"{Path(vng).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    args = [vng, "-r", kernel, "--disable-kvm", "--force-9p", "-m", BOOT_MEMORY, "--cpus", str(os.cpu_count() or 2),
            "--rwdir", str(results), "--exec", inner]
    started, wall = time.monotonic(), time.time()
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        raise LaneUnavailable(f"the guest did not finish within {timeout:.0f} s; its output:\n{out[-4000:]}") from None
    return GuestRun(done.returncode, done.stdout + done.stderr, round(time.monotonic() - started, 1), wall)


def _version_key(path: str) -> list[int | str]:
    parts = Path(path).name.removeprefix("vmlinuz-").replace("-", ".").split(".")
    return [int(p) if p.isdigit() else p for p in parts]
