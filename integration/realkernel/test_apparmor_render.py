"""A rendered AppArmor profile loads into a real kernel and confines a runc container as the rules say.

Runs inside the guest only (see integration/guest.py). The profile is rendered from a hand-made profile
document (nothing traces files yet): the learned file with a hostile name is readable, a name its
characters would match as a glob is not, `/proc/<pid>` entries match through `@{pid}`, what was not
learned is denied, and docker-default's denials win over a learned allow.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from integration.env import Env
from syscage.apparmor import profile_name, render_checked
from syscage.bundle import make_busybox_rootfs, write_bundle
from syscage.profile import new_profile

HOSTILE = "a b*[x]"
GLOB_TWIN = "a bZZx"  # what HOSTILE would match if its characters were a glob
QUOTED = 'q"{y,z},#@{pid} r'


def _entry(access: str) -> dict[str, Any]:
    return {"access": list(access), "first_run": "lane", "first_seen": "2026-01-01T00:00:00Z", "runs": 1}


def test_rendered_profile_confines_a_runc_container(env: Env, tmp_path: Path) -> None:
    rootfs = make_busybox_rootfs(tmp_path / "rootfs")
    srv = rootfs / "srv"
    srv.mkdir()
    for name, text in ((HOSTILE, "hostile-ok"), (QUOTED, "quoted-ok"), (GLOB_TWIN, "twin-leaked"),
                       ("plain", "plain-leaked")):
        (srv / name).write_text(text + "\n")
    name = f"lane-render-{os.getpid()}"
    profile = new_profile(name, "SCMP_ARCH_X86_64", "2026-01-01T00:00:00Z")
    profile.update(files_traced=True, network_traced=True, files={
        "/bin/busybox": _entry("rmx"),
        "/dev/null": _entry("w"),
        f"/srv/{HOSTILE}": _entry("r"),
        f"/srv/{QUOTED}": _entry("r"),
        "/proc/4711/attr/current": _entry("r"),  # learned under another pid: the rule is /proc/@{pid}/...
        "/proc/kcore": _entry("r"),              # learned, but docker-default denies it
    })
    text = render_checked(profile)
    source = tmp_path / "profile"
    source.write_text(text)
    loaded = subprocess.run(["apparmor_parser", "-r", "-K", str(source)], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr + text
    label = profile_name(name)
    try:
        script = (f"cat /proc/self/attr/current; cat '/srv/{HOSTILE}' '/srv/{QUOTED}'; cat '/srv/{GLOB_TWIN}'; "
                  "cat /srv/plain; cat /proc/kcore >/dev/null && echo kcore-read; echo done")
        spec = json.loads((write_bundle(tmp_path / "probe", rootfs, ["true"]) / "config.json").read_text())
        process = {**spec["process"], "args": ["/bin/sh", "-c", script], "apparmorProfile": label}
        # Unmask /proc/kcore: AppArmor's denial (EACCES) comes before kcore's own CAP_SYS_RAWIO check (EPERM).
        linux = {**spec["linux"], "maskedPaths": [p for p in spec["linux"]["maskedPaths"] if p != "/proc/kcore"]}
        bundle = write_bundle(tmp_path / "bundle", rootfs, ["true"], extra={"process": process, "linux": linux})
        ran = env.run(bundle)
        out = ran.stdout + ran.stderr
        assert f"{label} (enforce)" in ran.stdout, out
        assert "hostile-ok" in ran.stdout and "quoted-ok" in ran.stdout, out
        assert "twin-leaked" not in out and "plain-leaked" not in out, out
        for denied in (f"/srv/{GLOB_TWIN}", "/srv/plain", "/proc/kcore"):
            assert f"can't open '{denied}': Permission denied" in ran.stderr, out
        assert "kcore-read" not in out and "done" in ran.stdout, out
    finally:
        subprocess.run(["apparmor_parser", "-R", str(source)], capture_output=True, check=False)
