"""The integration tests' private syscage (config, store, run dir, tracer, runc root in a temporary
directory) and its bundles; also used by bench/ and tools/ (a plain module, not a pytest conftest)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syscage.bundle import write_bundle
from syscage.config import load_config
from syscage.shim.modifiers import add_learn_hooks, allow_all_filter
from syscage.store import ProfileStore

VENV_BIN = Path(sys.executable).parent
HOOK = VENV_BIN / "syscage-hook"
PROGRAMS = Path(__file__).parent / "programs"


def rootfs_with_program(base: Path, target: Path, program: str, installed: str, *cflags: str) -> Path:
    """`target`: a copy of the busybox rootfs `base` with integration/programs/PROGRAM.c built static as
    /bin/INSTALLED (made once: a module's tests share it)."""
    if not (target / "bin" / installed).exists():
        shutil.copytree(base, target, symlinks=True, dirs_exist_ok=True)
        subprocess.run(["gcc", "-static", "-O2", *cflags, "-o", str(target / "bin" / installed),
                        str(PROGRAMS / f"{program}.c")], check=True, capture_output=True)
    return target


def learn_hooks(hook_path: str, env: list[str], timeout: int = 60) -> dict[str, Any]:
    """The prestart and poststop hooks of a learning container, as written into config.json (the ones
    syscage-runtime adds: syscage.shim.modifiers.add_learn_hooks)."""
    return add_learn_hooks(hook_path, timeout, env)({})["hooks"]


def allow_all_seccomp() -> dict[str, Any]:
    """A filter that allows everything: gives the tracer a load to cut over at without restricting anything."""
    return allow_all_filter()


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

    def profile_store(self) -> ProfileStore:
        """The store of this private syscage, as its config makes it."""
        return ProfileStore.from_config(load_config(self.config_path))

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


def analysed(env: Env, profile: str, runs: int, timeout: float = 900.0) -> dict[str, Any]:
    """The profile's static set once the tracer has analysed `runs` of its runs (it does after each record, in
    a worker: the first analysis of libc or a large Go binary takes seconds on a busy machine)."""
    deadline = time.monotonic() + timeout
    while True:
        static = env.profile(profile).get("static") or {}
        if static.get("runs_analysed", 0) >= runs:
            return static
        if time.monotonic() >= deadline:
            raise AssertionError(f"the tracer analysed {static.get('runs_analysed', 0)} of {runs} runs of {profile}")
        time.sleep(0.5)
