"""A private containerd for the tests: its own root, state and socket under a temporary directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

NAMESPACE = "syscage-test"


@dataclass
class Containerd:
    root: Path
    socket: Path
    process: subprocess.Popen[bytes]

    def ctr(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "-a", str(self.socket), "-n", NAMESPACE, *args], capture_output=True,
                              text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)

    def run(self, rootfs: Path, cid: str, args: list[str], annotations: dict[str, str] | None = None,
            runc_binary: str | None = None, runtime: str | None = None,
            extra: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        # Without an image there is no image config: give the process the PATH an image would.
        flags = ["--rm", "--rootfs", "--env", "PATH=/bin:/usr/bin:/sbin:/usr/sbin", *(extra or [])]
        for key, value in (annotations or {}).items():
            flags += ["--annotation", f"{key}={value}"]
        if runc_binary:
            flags += ["--runc-binary", runc_binary]
        if runtime:
            flags += ["--runtime", runtime]
        return self.ctr("run", *flags, str(rootfs), cid, *args)

    def stop(self) -> None:
        for line in self.ctr("tasks", "ls", "-q").stdout.split():
            self.ctr("tasks", "kill", "-s", "SIGKILL", line)
        for line in self.ctr("containers", "ls", "-q").stdout.split():
            self.ctr("tasks", "delete", "-f", line)
            self.ctr("containers", "delete", line)
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_containerd(root: Path, path_prefix: Path, extra_env: dict[str, str]) -> Containerd:
    """Start containerd with a private config; `path_prefix` (the venv's bin) leads its PATH so it finds
    containerd-shim-syscage-v2 there, and `extra_env` (SYSCAGE_CONFIG) reaches the shims and runtimes."""
    if shutil.which("containerd") is None:
        raise RuntimeError("containerd is not installed (make deps installs it)")
    root.mkdir(parents=True, exist_ok=True)
    socket = root / "containerd.sock"
    config = root / "config.toml"
    config.write_text(f"""version = 2
root = "{root / 'root'}"
state = "{root / 'state'}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{root / 'containerd.sock.ttrpc'}"
""")
    env = {**os.environ, **extra_env, "PATH": f"{path_prefix}:{os.environ.get('PATH', '/usr/sbin:/usr/bin')}"}
    log = open(root / "containerd.log", "wb")  # noqa: SIM115 - kept open for the daemon's lifetime
    process = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=log, env=env,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 30
    daemon = Containerd(root, socket, process)
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"containerd exited: see {root / 'containerd.log'}")
        if socket.exists() and daemon.ctr("version").returncode == 0:
            return daemon
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"containerd did not start in 30 s: see {root / 'containerd.log'}")
