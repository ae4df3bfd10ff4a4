"""Integration fixtures: real runc, real eBPF, a private syscage config in a temporary directory.

These tests need root. They never skip for lack of it: a run that tested nothing must not look green.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from integration.containerd import Containerd, start_containerd
from integration.guest import IN_GUEST_ENV
from syscage.bundle import allow_all_seccomp, learn_hooks, make_busybox_rootfs, write_bundle

VENV_BIN = Path(sys.executable).parent
HOOK = VENV_BIN / "syscage-hook"

# integration/realkernel/ needs a kernel with AppArmor and kprobes: it runs only inside the real-kernel
# guest, which integration/test_real_kernel_lane.py boots (and asks for integration/realkernel alone).
collect_ignore_glob = [] if os.environ.get(IN_GUEST_ENV) else ["realkernel/*"]


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.geteuid() != 0:
        raise pytest.UsageError("integration tests need root (real runc, containerd and eBPF): run them as root")


@dataclass
class Env:
    root: Path
    config_path: Path
    store: Path
    run_dir: Path
    log_file: Path
    rootfs: Path
    runc_root: Path
    counter: list[int] = field(default_factory=lambda: [0])

    def name(self, prefix: str) -> str:
        self.counter[0] += 1
        return f"{prefix}-{os.getpid()}-{self.counter[0]}"

    def hooks(self) -> dict[str, Any]:
        return learn_hooks(str(HOOK), [f"SYSCAGE_CONFIG={self.config_path}"], timeout=60)

    def bundle(self, args: list[str], *, profile: str | None = None, learn: bool = True,
               seccomp: dict[str, Any] | str | None = "allow-all", annotations: dict[str, str] | None = None,
               extra: dict[str, Any] | None = None) -> Path:
        """A bundle for `args`; by default learning into `profile` with an allow-all filter to cut over at."""
        notes = dict(annotations or {})
        if learn:
            notes.setdefault("io.syscage.mode", "learn")
            if profile:
                notes["io.syscage.profile"] = profile
        spec_seccomp = allow_all_seccomp() if seccomp == "allow-all" else seccomp
        return write_bundle(self.root / "bundles" / self.name("b"), self.rootfs, args, annotations=notes,
                            hooks=self.hooks() if learn else None, seccomp=spec_seccomp,  # type: ignore[arg-type]
                            extra=extra)

    def runc(self, *args: str, bundle: Path | None = None, check: bool = False,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = ["runc", "--root", str(self.runc_root), *args]
        return subprocess.run(cmd, cwd=bundle or self.root, capture_output=True, text=True, timeout=timeout,
                              check=check, stdin=subprocess.DEVNULL)

    def run(self, bundle: Path, cid: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.runc("run", cid or self.name("c"), bundle=bundle)

    def profile(self, name: str) -> dict[str, Any]:
        return json.loads((self.store / "profiles" / name / "profile.json").read_text())

    def seccomp(self, name: str) -> dict[str, Any]:
        return json.loads((self.store / "profiles" / name / "seccomp.json").read_text())

    def tracer_pid(self) -> int | None:
        try:
            return int((self.run_dir / "tracer.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def stop_tracer(self) -> None:
        pid = self.tracer_pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


def write_config(path: Path, root: Path, **sections: dict[str, Any]) -> None:
    base: dict[str, dict[str, Any]] = {
        "paths": {"store": str(root / "store"), "run_dir": str(root / "run"), "log_file": str(root / "syscage.log")},
        "tracer": {"idle_timeout": 600},
        "runtime": {"hook_path": str(HOOK)},
    }
    for table, values in sections.items():
        base.setdefault(table, {}).update(values)
    lines = []
    for table, values in base.items():
        lines.append(f"[{table}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in values.items())
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("syscage")
    config_path = root / "config.toml"
    write_config(config_path, root)
    os.environ["SYSCAGE_CONFIG"] = str(config_path)
    rootfs = make_busybox_rootfs(root / "rootfs")
    e = Env(root, config_path, root / "store", root / "run", root / "syscage.log", rootfs, root / "runc")
    yield e
    e.stop_tracer()
    for line in e.runc("list", "-q").stdout.split():
        e.runc("delete", "--force", line)
    shutil.rmtree(root / "bundles", ignore_errors=True)


@pytest.fixture(scope="session")
def containerd(env: Env) -> Iterator[Containerd]:
    daemon = start_containerd(env.root / "containerd", VENV_BIN, {"SYSCAGE_CONFIG": str(env.config_path)})
    yield daemon
    daemon.stop()
