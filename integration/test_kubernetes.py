"""The DaemonSet's node set-up (syscage.kubernetes.node_setup_script, the very script the manifest runs) against a
private containerd config and syscage config: containerd reads the runtime handler the RuntimeClass names, and a
second run changes nothing and restarts nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import tomli

from integration.env import VENV_BIN
from syscage.kubernetes import node_setup_script

REPO = Path(__file__).resolve().parent.parent


def test_node_setup_writes_the_handler_once(tmp_path: Path) -> None:
    containerd_config = tmp_path / "containerd.toml"
    containerd_config.write_text(subprocess.run(["containerd", "config", "default"], capture_output=True, text=True,
                                                check=True).stdout)
    restarted = tmp_path / "restarted"
    script = node_setup_script("syscage-k8s", "shim", str(containerd_config), str(tmp_path / "etc" / "config.toml"),
                               str(REPO / "config" / "config.toml"), str(tmp_path / "no-host-prefix"),
                               f"echo x >> {restarted}")
    environ = {**os.environ, "PATH": f"{VENV_BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
               "SYSCAGE_CONFIG": str(tmp_path / "etc" / "config.toml")}
    for _ in range(2):
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=environ, timeout=120,
                              check=False)
        assert done.returncode == 0, done.stderr
    assert restarted.read_text() == "x\n"  # the first run changed the config, the second did not
    assert (tmp_path / "etc" / "config.toml").read_text() == (REPO / "config" / "config.toml").read_text()
    dumped = tomli.loads(subprocess.run(["containerd", "--config", str(containerd_config), "config", "dump"],
                                        capture_output=True, text=True, check=True).stdout)
    runtime = dumped["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["syscage-k8s"]
    assert runtime["runtime_type"] == "io.containerd.syscage.v2"
