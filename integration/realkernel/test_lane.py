"""The real-kernel lane itself: the guest has what this host lacks, and runc confines a container there.

Runs inside the guest only (see integration/guest.py); integration/test_real_kernel_lane.py boots it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from integration.env import Env

PROFILE = "syscage-lane-smoke"


def test_guest_kernel_has_apparmor_and_kprobes() -> None:
    assert Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    assert "apparmor" in Path("/sys/kernel/security/lsm").read_text().split(",")
    # kprobe_events exists only where the kernel was built with kprobes (not on the host's kernel).
    assert any(Path(d, "kprobe_events").exists() for d in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"))


def test_apparmor_profile_confines_a_runc_container(env: Env, tmp_path: Path) -> None:
    source = tmp_path / PROFILE
    source.write_text(f"""#include <tunables/global>
profile {PROFILE} flags=(attach_disconnected,mediate_deleted) {{
  #include <abstractions/base>
  file,
  deny /etc/hostname r,
}}
""")
    loaded = subprocess.run(["apparmor_parser", "-r", "-W", str(source)], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    try:
        args = ["sh", "-c", "cat /proc/self/attr/current; cat /etc/hostname"]
        confined = env.run(env.bundle(args, learn=False, seccomp=None,
                                      extra={"process": _process(env, args, PROFILE)}))
        assert f"{PROFILE} (enforce)" in confined.stdout, confined.stdout + confined.stderr
        assert "Permission denied" in confined.stderr and "syscage-demo" not in confined.stdout
        free = env.run(env.bundle(["cat", "/etc/hostname"], learn=False, seccomp=None))
        assert free.returncode == 0 and "syscage-demo" in free.stdout, free.stderr
    finally:
        subprocess.run(["apparmor_parser", "-R", str(source)], capture_output=True, check=False)


def _process(env: Env, args: list[str], profile: str) -> dict[str, object]:
    """The bundle's process section with an AppArmor profile named."""
    import json

    spec = json.loads((env.bundle(args, learn=False, seccomp=None) / "config.json").read_text())
    return {**spec["process"], "apparmorProfile": profile}
