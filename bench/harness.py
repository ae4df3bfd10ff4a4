"""Shared machinery: a private syscage (config, store, run dir, tracer), a busybox rootfs and a runc root in
a temporary directory; timing helpers; the Figure record every benchmark returns."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from integration.containerd import Containerd
from integration.env import VENV_BIN, allow_all_seccomp, learn_hooks, write_config
from syscage.bundle import make_busybox_rootfs, write_bundle

RUNC = shutil.which("runc") or "/usr/sbin/runc"
DEVNULL = subprocess.DEVNULL
SOURCE = Path(__file__).resolve().parent.parent


class BenchError(Exception):
    """A measurement could not be taken (a container failed to run, a tool is missing)."""


class EmptySysEnterProgram:
    """The cheapest thing any syscall tracer can attach: a BPF program on raw_syscalls:sys_enter that returns
    at once. Attaching anything there makes the kernel take its traced syscall path on every thread of the host,
    so what this costs is the floor for every tool built on that tracepoint (syscage, oci-seccomp-bpf-hook,
    Inspektor Gadget's advisor), measured on this machine in the same run."""

    def __init__(self) -> None:
        from bcc import BPF  # Debian's python3-bpfcc

        self.bpf = BPF(text="int noop(void *ctx) { return 0; }")
        self.attached = False

    def __enter__(self) -> EmptySysEnterProgram:
        self.bpf.attach_raw_tracepoint(tp="sys_enter", fn_name="noop")
        self.attached = True
        return self

    def __exit__(self, *_: object) -> None:
        self.bpf.detach_raw_tracepoint(tp="sys_enter")
        self.attached = False

    def close(self) -> None:
        if self.attached:
            self.__exit__()
        self.bpf.cleanup()


def install_syscage(venv: Path) -> Path:
    """A regular (non-editable) install of this checkout, as `make install` makes it: what operators run.
    The development venv's editable install adds an import hook that costs every syscage process ~14 ms."""
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)], check=True,
                   capture_output=True, timeout=300)
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           str(SOURCE)], capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise BenchError(f"pip install of {SOURCE} failed: {done.stderr.strip()[-400:]}")
    return venv / "bin"


@dataclass
class Figure:
    number: int
    key: str
    title: str
    unit: str
    value: float | None  # from the medians of each side
    best: float | None  # from the minimums of each side
    target: str
    ok: bool | None  # None: no target, or not measured
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # one line under the row: the baseline and what the figure is made of


def summary(samples: Sequence[float]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(samples), "min": round(min(samples), 4),
                           "median": round(statistics.median(samples), 4), "max": round(max(samples), 4)}
    if len(samples) <= 30:
        out["samples"] = [round(s, 4) for s in samples]
    return out


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def med(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def timed(cmd: Sequence[str], **kwargs: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    if "input" not in kwargs:
        kwargs.setdefault("stdin", DEVNULL)
    kwargs.setdefault("capture_output", True)
    kwargs.setdefault("text", True)
    kwargs.setdefault("timeout", 300)
    start = time.perf_counter()
    result = subprocess.run(list(cmd), check=False, **kwargs)
    return time.perf_counter() - start, result


def rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def other_tracers(own: int | None) -> list[int]:
    """syscage tracers on this host that are not ours (another user's tests): their BPF program runs too."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == own:
            continue
        with contextlib.suppress(OSError):
            if b"syscage.hooks.daemon.tracer" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


class Bench:
    """A private syscage installation under a temporary directory, torn down by close()."""

    def __init__(self, quick: bool, editable: bool = False) -> None:
        self.quick = quick
        self.root = Path(tempfile.mkdtemp(prefix="syscage-bench-"))
        # The commands under test: an installed copy, or (editable) the development venv's.
        self.bin = VENV_BIN if editable else install_syscage(self.root / "venv")
        self.syscage, self.wrapper, self.hook = (str(self.bin / c) for c in ("syscage", "syscage-runtime",
                                                                               "syscage-hook"))
        self.python = str(self.bin / "python")
        self.config = self.root / "config.toml"
        write_config(self.config, self.root, runtime={"hook_path": self.hook})
        os.environ["SYSCAGE_CONFIG"] = str(self.config)
        self.store = self.root / "store"
        self.run_dir = self.root / "run"
        self.runc_root = self.root / "runc"
        self.rootfs = make_busybox_rootfs(self.root / "rootfs")
        self.hooks = learn_hooks(self.hook, [f"SYSCAGE_CONFIG={self.config}"])
        self.containerd: Containerd | None = None
        self.ready_checks: list[dict[str, Any]] = []
        self.extras: dict[str, Any] = {}  # findings that are not figures (import costs)
        self._counter = 0

    def reps(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def name(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}-{os.getpid()}-{self._counter}"

    # -- containers -------------------------------------------------------------------------------

    def bundle(self, args: list[str], mode: str | None = None, profile: str | None = None,
               hooks: bool | None = None) -> Path:
        """A bundle with an allow-all filter; learn hooks when mode is learn (unless hooks=False)."""
        notes = {"io.syscage.mode": mode} if mode else {}
        if profile:
            notes["io.syscage.profile"] = profile
        with_hooks = mode == "learn" if hooks is None else hooks
        return write_bundle(self.root / "bundles" / self.name("b"), self.rootfs, args, annotations=notes,
                            hooks=self.hooks if with_hooks else None, seccomp=allow_all_seccomp())

    def runc(self, *args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([RUNC, "--root", str(self.runc_root), *args], cwd=cwd or self.root, check=False,
                              stdin=DEVNULL, capture_output=True, text=True, timeout=timeout)

    def run(self, bundle: Path, cid: str | None = None) -> tuple[float, subprocess.CompletedProcess[str]]:
        """`runc run` in the foreground; (wall seconds, result). Raises if the container failed."""
        cid = cid or self.name("c")
        wall, result = timed([RUNC, "--root", str(self.runc_root), "run", cid], cwd=bundle)
        if result.returncode != 0:
            raise BenchError(f"runc run {cid} failed ({result.returncode}): {result.stderr.strip()[-400:]}")
        return wall, result

    def learn_run(self, bundle: Path, profile: str) -> float:
        """A learning run; also checks that the run is in profile.json the moment runc returns (figure 3)."""
        cid = self.name("l")
        wall, _ = self.run(bundle, cid)
        present = self.profile_has_run(profile, cid)
        delay = 0.0
        if not present:
            start = time.perf_counter()
            while time.perf_counter() - start < 5 and not self.profile_has_run(profile, cid):
                time.sleep(0.01)
            delay = time.perf_counter() - start
        self.ready_checks.append({"container": cid, "present_at_return": present, "delay_s": round(delay, 3)})
        return wall

    def detach(self, bundle: Path) -> str:
        """`runc run --detach`: the container keeps runc's stdio, so they must not be pipes we wait on."""
        cid = self.name("d")
        log = self.root / "detach" / f"{cid}.err"
        log.parent.mkdir(exist_ok=True)
        with open(log, "w") as err:
            result = subprocess.run([RUNC, "--root", str(self.runc_root), "run", "--detach", cid], cwd=bundle,
                                    stdin=DEVNULL, stdout=DEVNULL, stderr=err, timeout=120, check=False)
        if result.returncode != 0:
            raise BenchError(f"runc run --detach {cid} failed: {log.read_text().strip()[-400:]}")
        return cid

    def detach_many(self, bundle: Path, count: int) -> list[str]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda _: self.detach(bundle), range(count)))

    def delete(self, cids: Sequence[str]) -> None:
        """Kill and delete (running the poststop hooks of learners)."""
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda cid: self.runc("delete", "--force", cid), cids))

    def profile(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.store / "profiles" / name / "profile.json").read_text())
        except (FileNotFoundError, ValueError):
            return None

    def profile_has_run(self, name: str, cid: str) -> bool:
        doc = self.profile(name)
        return doc is not None and any(run.get("container_id") == cid for run in doc.get("runs", []))

    # -- tracer -----------------------------------------------------------------------------------

    def tracer_pid(self) -> int | None:
        try:
            pid = int((self.run_dir / "tracer.pid").read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if alive(pid) else None

    def tracer_status(self) -> dict[str, Any]:
        result = subprocess.run([self.syscage, "tracer", "status"], capture_output=True, text=True, check=False,
                                timeout=30, stdin=DEVNULL)
        return json.loads(result.stdout) if result.returncode == 0 else {}

    def stop_tracer(self) -> None:
        pid = self.tracer_pid()
        if pid is None:
            return
        subprocess.run([self.syscage, "tracer", "stop"], capture_output=True, check=False, timeout=30, stdin=DEVNULL)
        deadline = time.monotonic() + 30
        while alive(pid):
            if time.monotonic() > deadline:
                raise BenchError(f"tracer pid {pid} did not exit within 30 s of `syscage tracer stop`")
            time.sleep(0.05)

    def warm_tracer(self) -> None:
        if self.tracer_pid() is None:
            self.run(self.bundle(["true"], "learn", "bench-warmup"))
        deadline = time.monotonic() + 180  # on a loaded host the BPF compile outlasts the hook's start_timeout
        while self.tracer_pid() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if self.tracer_pid() is None:
            raise BenchError(f"no tracer after a learning run: see {self.root / 'syscage.log'}")

    # -- teardown ---------------------------------------------------------------------------------

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.delete(self.runc("list", "-q").stdout.split())
        if self.containerd is not None:
            with contextlib.suppress(Exception):
                self.containerd.stop()
        with contextlib.suppress(Exception):
            self.stop_tracer()
        shutil.rmtree(self.root, ignore_errors=True)
