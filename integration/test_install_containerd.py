"""`syscage install containerd --write` against containerd's own default config, read back by containerd."""

from __future__ import annotations

import subprocess
from pathlib import Path

import tomli

from integration.env import VENV_BIN


def dump(config: Path) -> dict:
    out = subprocess.run(["containerd", "--config", str(config), "config", "dump"], capture_output=True, text=True,
                         check=True)
    return tomli.loads(out.stdout)


def test_containerd_reads_the_written_runtime(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(subprocess.run(["containerd", "config", "default"], capture_output=True, text=True,
                                     check=True).stdout)
    before = dump(config)
    for via, name in (("shim", "syscage"), ("binary-name", "syscage-runc")):
        result = subprocess.run([str(VENV_BIN / "syscage"), "install", "containerd", "--config", str(config),
                                 "--via", via, "--name", name, "--write"], capture_output=True, text=True,
                                check=False, env={"PATH": f"{VENV_BIN}:/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr
    after = dump(config)
    runtimes = after["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
    assert runtimes["syscage"]["runtime_type"] == "io.containerd.syscage.v2"
    assert runtimes["syscage-runc"]["runtime_type"] == "io.containerd.runc.v2"
    assert runtimes["syscage-runc"]["options"]["BinaryName"] == "/usr/local/bin/syscage-runtime"
    assert "io.syscage.*" in runtimes["syscage"]["pod_annotations"]
    # Everything else containerd sees is as it was.
    del runtimes["syscage"], runtimes["syscage-runc"]
    assert after == before
