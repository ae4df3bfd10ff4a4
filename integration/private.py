"""A private syscage world for tests that stop, kill or measure things: its own config (so its own store,
run directory, log and tracer), and its own containerd, away from the session's shared ones."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from integration import bpf_objects
from integration.containerd import NAMESPACE, Containerd, start_containerd
from integration.env import VENV_BIN, Env, write_config

WRAPPER = str(VENV_BIN / "syscage-runtime")
HANDLER = "io.containerd.syscage.v2"


@dataclass
class World:
    root: Path
    config: Path
    env: Env
    daemon: Containerd | None = None

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "syscage.log"

    def environ(self) -> dict[str, str]:
        return {**os.environ, "SYSCAGE_CONFIG": str(self.config)}

    def start_containerd(self) -> Containerd:
        self.daemon = start_containerd(self.root / "containerd", VENV_BIN, {"SYSCAGE_CONFIG": str(self.config)})
        return self.daemon

    def rootfs(self) -> Path:
        """A private copy: ctr mounts --rootfs writable and the workloads write into it."""
        target = self.root / "rootfs" / self.env.name("r")
        shutil.copytree(self.env.rootfs, target, symlinks=True)
        return target

    def ctr_learn(self, cid: str, args: list[str], profile: str, via: str = "binary-name",
                  rootfs: Path | None = None, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert self.daemon is not None
        route: dict[str, str] = {"runc_binary": WRAPPER} if via == "binary-name" else {"runtime": HANDLER}
        return self.daemon.run(rootfs or self.rootfs(), cid, args,
                               {"io.syscage.mode": "learn", "io.syscage.profile": profile},
                               **route, **kwargs)  # type: ignore[arg-type]

    def profile(self, name: str) -> dict[str, Any]:
        return json.loads((self.store / "profiles" / name / "profile.json").read_text())

    def tracer_pid(self) -> int | None:
        """The tracer's pid, if tracer.pid names a live tracer. (A tracer in a PID namespace of its own writes
        its pid there: never trust the file enough to signal whatever it names.)"""
        try:
            pid = int((self.run_dir / "tracer.pid").read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"syscage.hooks.daemon.tracer" in cmdline else None

    def log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log_file.read_text().splitlines()]

    def stop_tracer(self, timeout: float = 60) -> None:
        """What `syscage tracer stop` does (SIGTERM), then wait until the process is gone."""
        pid = self.tracer_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            wait_gone(pid, timeout)

    def related_processes(self) -> list[str]:
        """Live processes that belong to this world: started with its config in their environment (shims,
        runtimes, hooks, the tracer) or naming its containerd socket or state (shims, runc). containerd
        itself is left out."""
        marks = [str(self.config).encode(), str(self.root / "containerd").encode()]
        found = []
        daemon_pid = self.daemon.process.pid if self.daemon else None
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) in (os.getpid(), daemon_pid):
                continue
            try:
                blob = (proc / "environ").read_bytes() + (proc / "cmdline").read_bytes()
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(mark in blob for mark in marks):
                found.append(f"{proc.name}: {cmdline}")
        return found

    def leftover_files(self) -> list[str]:
        """Files that outlive the containers: markers, relay directories and FIFOs in the run directory,
        temporary files in the store."""
        left = []
        for sub in ("learning", "relay"):
            base = self.run_dir / sub
            if base.exists():
                left += [str(p) for p in base.rglob("*") if not p.is_dir() or sub == "relay"]
        left += [str(p) for p in self.run_dir.glob("*") if p.is_fifo()]
        left += [str(p) for p in self.store.rglob("*.tmp")]
        return left


def wait_gone(pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        stat = Path(f"/proc/{pid}/stat").read_text() if Path(f"/proc/{pid}/stat").exists() else ""
        if stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]:
            return  # exited; its parent has not reaped it yet
        assert time.monotonic() < deadline, f"process {pid} did not exit"
        time.sleep(0.1)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


@contextlib.contextmanager
def containerd_world(env: Env) -> Iterator[World]:
    """A world with its own containerd running; the tracer and containerd are stopped afterwards."""
    w = make_world(env, tracer={"idle_timeout": 600})
    w.start_containerd()
    yield w
    if w.daemon is not None:
        w.daemon.stop()
    if (pid := w.tracer_pid()) is not None:
        w.stop_tracer()
        wait_gone(pid)


def make_world(env: Env, **config: dict[str, Any]) -> World:
    root = Path(tempfile.mkdtemp(prefix="w-", dir=env.root))
    write_config(root / "config.toml", root, **config)
    return World(root, root / "config.toml", env)


def tracer_bpf(pid: int) -> set[tuple[str, int]]:
    held = bpf_objects.held_by(pid)
    assert {kind for kind, _ in held} == {"prog", "map"}, held
    return held


__all__ = ["HANDLER", "NAMESPACE", "WRAPPER", "World", "make_world", "peak_rss_mb", "rss_mb", "tracer_bpf",
           "wait_gone"]
