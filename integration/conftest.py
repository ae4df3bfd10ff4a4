"""Integration fixtures: real runc, real eBPF, a private syscage config in a temporary directory.

These tests need root. They never skip for lack of it: a run that tested nothing must not look green.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from integration.containerd import Containerd, start_containerd
from integration.env import HOOK, VENV_BIN, Env, write_config
from integration.guest import IN_GUEST_ENV
from syscage.bundle import make_busybox_rootfs

# Env, write_config, HOOK and VENV_BIN live in integration.env (bench/ and tools/ use them too).
__all__ = ["HOOK", "VENV_BIN", "Env", "write_config"]

# integration/realkernel/ needs a kernel with AppArmor and kprobes: it runs only inside the real-kernel
# guest, which integration/test_real_kernel_lane.py boots (and asks for integration/realkernel alone).
collect_ignore_glob = [] if os.environ.get(IN_GUEST_ENV) else ["realkernel/*"]


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.geteuid() != 0:
        raise pytest.UsageError("integration tests need root (real runc, containerd and eBPF): run them as root")


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
