"""Build small OCI bundles around a busybox rootfs: for `syscage demo` (the tests and benchmarks use them too,
through integration/env.py)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from syscage.errors import SyscageError

BUSYBOX = Path("/bin/busybox")


def make_busybox_rootfs(target: Path) -> Path:
    """A rootfs with a statically linked busybox and its applets as symlinks (idempotent)."""
    if (target / "bin" / "busybox").exists():
        return target
    if not BUSYBOX.exists():
        raise SyscageError(f"{BUSYBOX} not found", "install Debian's busybox-static (make deps does)")
    for sub in ("bin", "etc", "tmp", "proc", "sys", "dev", "root"):
        (target / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, target / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = target / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (target / "etc" / "hostname").write_text("syscage-demo\n")
    (target / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (target / "tmp").chmod(0o1777)
    return target


def base_spec(runtime: str = "runc") -> dict[str, Any]:
    """The runtime's own default spec (`runc spec` writes it into a directory), with no terminal."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([runtime, "spec", "--bundle", tmp], check=True, capture_output=True)
        spec = json.loads((Path(tmp) / "config.json").read_text())
    spec["process"]["terminal"] = False
    return spec


_SPEC_CACHE: dict[str, dict[str, Any]] = {}


def write_bundle(bundle: Path, rootfs: Path, args: list[str], *, annotations: dict[str, str] | None = None,
                 hooks: dict[str, Any] | None = None, seccomp: dict[str, Any] | None = None,
                 runtime: str = "runc", extra: dict[str, Any] | None = None) -> Path:
    """Write bundle/config.json for `args` in `rootfs` (shared, read-only) with the given extras."""
    if runtime not in _SPEC_CACHE:
        _SPEC_CACHE[runtime] = base_spec(runtime)
    spec = copy.deepcopy(_SPEC_CACHE[runtime])
    bundle.mkdir(parents=True, exist_ok=True)
    spec["root"] = {"path": str(rootfs), "readonly": True}
    spec["process"]["args"] = args
    spec["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "mode=1777"]})
    if annotations:
        spec["annotations"] = dict(annotations)
    if hooks:
        spec["hooks"] = hooks
    if seccomp is not None:
        spec["linux"]["seccomp"] = seccomp
    for key, value in (extra or {}).items():
        spec[key] = value
    (bundle / "config.json").write_text(json.dumps(spec, indent=2))
    return bundle
