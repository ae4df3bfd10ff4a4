"""`syscage demo`: learn a profile for a busybox container under runc, then enforce it.

Everything goes through syscage-runtime exactly as containerd would call it: the container only
carries the two annotations; the wrapper adds hooks (learn) or the seccomp filter (enforce).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from syscage.bundle import make_busybox_rootfs, write_bundle
from syscage.config import Config
from syscage.errors import SyscageError
from syscage.store import ProfileStore

PROFILE = "syscage-demo"
WORKLOAD = ["sh", "-c", "echo hello from a learning container; ls /; cat /etc/hostname"]
RUNTIME_SETUP = ("pivot_root", "mount", "umount2", "sethostname")


def run_demo(config: Config, workdir: str | None) -> int:
    if shutil.which("runc") is None:
        raise SyscageError("runc is not installed", "run `make deps` first")
    wrapper = Path(sys.executable).parent / "syscage-runtime"
    if not wrapper.exists():
        wrapper = Path(shutil.which("syscage-runtime") or "syscage-runtime")
    temporary = workdir is None
    root = Path(workdir or tempfile.mkdtemp(prefix="syscage-demo-"))
    try:
        return _demo(config, root, wrapper)
    finally:
        if temporary:
            shutil.rmtree(root, ignore_errors=True)


def _demo(config: Config, root: Path, wrapper: Path) -> int:
    rootfs = make_busybox_rootfs(root / "rootfs")
    state = root / "runc-state"

    def run(step: str, mode: str, args: list[str]) -> subprocess.CompletedProcess[str]:
        bundle = write_bundle(root / step, rootfs, args,
                              annotations={"io.syscage.mode": mode, "io.syscage.profile": PROFILE})
        cmd = [str(wrapper), "--root", str(state), "run", "--bundle", str(bundle), f"syscage-demo-{step}"]
        print(f"\n$ {' '.join(cmd)}    # io.syscage.mode={mode}, process: {' '.join(args)}")
        result = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        for line in (result.stdout + result.stderr).splitlines():
            print(f"  | {line}")
        print(f"  exit code {result.returncode}")
        return result

    print(f"== 1. learn: run the container with io.syscage.mode=learn (profile {PROFILE})")
    learned = run("learn", "learn", WORKLOAD)
    if learned.returncode != 0:
        raise SyscageError("the learning container failed", f"see {config.log_file}")
    profile = ProfileStore.from_config(config).read(PROFILE)
    if profile is None:
        raise SyscageError(f"the learning container left no profile {PROFILE}", f"see {config.log_file}")
    directory = config.profiles_dir / PROFILE
    run_record = profile["runs"][-1]
    print(f"\n== 2. the profile: {directory}/profile.json ({len(profile['syscalls'])} syscalls, "
          f"{len(profile['runs'])} run(s), cut over at the {run_record['cutover']} load)")
    print("  " + " ".join(sorted(profile["syscalls"])))
    leaked = [s for s in RUNTIME_SETUP if s in profile["syscalls"]]
    print(f"  runc's own set-up ({', '.join(RUNTIME_SETUP)}): {'LEAKED: ' + str(leaked) if leaked else 'absent'}")
    print(f"  OCI seccomp filter for podman/docker/runc: {directory}/seccomp.json")

    print("\n== 3. enforce: the same container with io.syscage.mode=enforce")
    enforced = run("enforce", "enforce", WORKLOAD)
    print("\n== 4. enforce: something the container never did while learning")
    denied = run("deny", "enforce", ["mkdir", "/tmp/never-learned"])

    ok = (enforced.returncode == 0 and enforced.stdout == learned.stdout and denied.returncode != 0
          and not leaked)
    print("\n== result: " + ("the learned workload runs under its profile and the unlearned mkdir is denied"
                             if ok else "UNEXPECTED: see the output above and " + str(config.log_file)))
    print(f"inspect it with: syscage show {PROFILE}")
    return 0 if ok else 1
