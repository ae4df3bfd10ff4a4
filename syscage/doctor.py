"""`syscage doctor`: is this host ready for syscage? One check per line, each failing one with its fix.

A check is `required` when syscage cannot learn or enforce without it; the others (AppArmor, capability
tracing, containerd, a running tracer) say what the host has and what follows from it.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from syscage.config import Config

TRACEFS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True

    def line(self) -> str:
        mark = "ok" if self.ok else "FAIL" if self.required else "no"
        fix = f" -- fix: {self.fix}" if self.fix and not self.ok else ""
        return f"{mark:5} {self.name:22} {self.detail}{fix}"


def _mounts(proc_mounts: Path = Path("/proc/mounts")) -> list[tuple[str, str]]:
    """(mount point, file system type) of every mount."""
    try:
        return [(f[1], f[2]) for f in (line.split() for line in proc_mounts.read_text().splitlines()) if len(f) > 2]
    except OSError:
        return []


def check_runtime(config: Config) -> Check:
    path = config.runtime_path
    if not os.access(path, os.X_OK):
        return Check("runtime", False, f"{path} (runtime.path) is missing or not executable",
                     "apt-get install runc (or crun), or set runtime.path in the config")
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10,
                             stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return Check("runtime", False, f"{path} --version failed: {exc}", "check the runtime binary")
    first = out.splitlines()[0] if out.strip() else "version unknown"
    return Check("runtime", True, f"{path} ({first})")


def check_import(name: str, module: str, fix: str) -> Check:
    import importlib

    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # any failure to import means it is not usable
        return Check(name, False, f"python module {module} cannot be imported ({type(exc).__name__}: {exc})", fix)
    where = getattr(mod, "__file__", None) or "built in"
    return Check(name, True, f"{module} importable ({where})")


def check_kernel_build(release: str | None = None, modules: Path = Path("/lib/modules"),
                       btf: Path = Path("/sys/kernel/btf/vmlinux")) -> Check:
    """bcc compiles its C against the kernel headers at /lib/modules/RELEASE/build; BTF alone is not enough for
    bcc (syscage's BPF reads no struct layout, so headers of a nearby version do)."""
    release = release or os.uname().release
    build = modules / release / "build"
    has_btf = btf.exists()
    extra = f"; BTF {'present' if has_btf else 'absent'} ({btf})"
    if (build / "include").is_dir() or (build / "Makefile").exists():
        return Check("kernel headers", True, f"{build} -> {os.path.realpath(build)}{extra}")
    return Check("kernel headers", False, f"{build} is missing{extra} (bcc compiles against the headers)",
                 f"apt-get install linux-headers-amd64 and link {build} (and ../source) to the installed headers")


def check_tracefs(mounts: list[tuple[str, str]] | None = None) -> Check:
    mounts = _mounts() if mounts is None else mounts
    points = [point for point, fstype in mounts if fstype == "tracefs"]
    if points:
        return Check("tracefs", True, f"mounted at {', '.join(points)}")
    return Check("tracefs", False, "not mounted", "mount -t tracefs tracefs /sys/kernel/tracing")


def check_seccomp(status: Path = Path("/proc/self/status"),
                  actions: Path = Path("/proc/sys/kernel/seccomp/actions_avail")) -> Check:
    try:
        has_field = any(line.startswith("Seccomp:") for line in status.read_text().splitlines())
        avail = actions.read_text().split()
    except OSError:
        has_field, avail = False, []
    missing = [a for a in ("errno", "log", "allow") if a not in avail]
    if not has_field or missing:
        return Check("seccomp", False, f"seccomp filters unavailable or lacking actions {missing}",
                     "use a kernel built with CONFIG_SECCOMP_FILTER")
    return Check("seccomp", True, f"filters available (actions: {' '.join(avail)})")


def check_cgroup2(mounts: list[tuple[str, str]] | None = None) -> Check:
    mounts = _mounts() if mounts is None else mounts
    points = [point for point, fstype in mounts if fstype == "cgroup2"]
    if points:
        return Check("cgroup v2", True, f"mounted at {', '.join(points)}")
    return Check("cgroup v2", False, "not mounted (the tracer tells containers apart by their cgroup v2 node)",
                 "boot with systemd.unified_cgroup_hierarchy=1, or mount cgroup2")


def check_apparmor(config: Config, enabled: Path | None = None, securityfs: Path | None = None) -> Check:
    from syscage.apparmor_load import available

    why_not = available(enabled, securityfs)
    if why_not is None:
        return Check("apparmor", True, "enforced by this kernel: enforce loads syscage-NAME profiles", required=False)
    required = config.apparmor_mode == "required"
    follows = ("apparmor.mode = required refuses enforce and complain here" if required
               else "containers are confined by seccomp only")
    return Check("apparmor", False, f"not present: {why_not}; {follows}",
                 "boot a kernel with AppArmor, or set apparmor.mode = auto" if required else "", required=required)


def check_kprobes(tracefs: tuple[Path, ...] = TRACEFS) -> Check:
    for root in tracefs:
        if (root / "kprobe_events").exists():
            return Check("capability tracing", True, f"possible (kprobes: {root / 'kprobe_events'})", required=False)
    return Check("capability tracing", False, "not possible: no kprobes (kprobe_events) in this kernel's tracefs",
                 required=False)


def check_containerd(config_path: Path | None = None) -> Check:
    """syscage's runtime entry (any runtime with its shim type or syscage-runtime as BinaryName), in the main
    config or its drop-in conf.d/syscage.toml."""
    import tomli

    from syscage import install

    config_path = config_path or install.DEFAULT_CONTAINERD_CONFIG
    found = []
    for path in (config_path, config_path.parent / "conf.d" / install.DROPIN_NAME):
        try:
            data = tomli.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            return Check("containerd", False, f"{path} unreadable: {exc}", "fix the file", required=False)
        for plugin in install.CRI_PLUGIN.values():
            runtimes = _dig(data, "plugins", plugin, "containerd", "runtimes")
            for name, entry in runtimes.items():
                if not isinstance(entry, dict):
                    continue
                binary = str((entry.get("options") or {}).get("BinaryName", ""))
                if entry.get("runtime_type") == install.SHIM_RUNTIME_TYPE or binary.endswith("syscage-runtime"):
                    found.append(f"runtime {name!r} in {path}")
    if found:
        return Check("containerd", True, "configured: " + ", ".join(found), required=False)
    if not config_path.exists():
        return Check("containerd", False, f"no {config_path} (runc, crun and hooks.d work without it)",
                     "syscage install containerd --write, if you use containerd", required=False)
    return Check("containerd", False, f"no syscage runtime in {config_path}",
                 "syscage install containerd --write, then restart containerd", required=False)


def _dig(data: Any, *keys: str) -> dict[str, Any]:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


def check_store(store: Path) -> Check:
    """Writable without writing: the store is only written by the store code, under its locks."""
    probe = store
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        readonly = bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
    except OSError as exc:
        return Check("store", False, f"{store}: {exc}", "create it, or set paths.store")
    if readonly or not os.access(probe, os.W_OK | os.X_OK):
        why = "on a read-only file system" if readonly else f"{probe} is not writable by this user"
        return Check("store", False, f"{store}: {why}", "run as root, or set paths.store to a writable directory")
    free = os.statvfs(probe)
    mb = free.f_bavail * free.f_frsize // (1 << 20)
    state = "exists" if probe == store else f"will be created under {probe}"
    return Check("store", True, f"{store} writable ({state}, {mb} MB free)")


def check_tracer(config: Config) -> Check:
    from syscage.protocol import STATUS, TracerUnavailable, request

    try:
        status = request(config, STATUS, timeout=5)
    except TracerUnavailable:
        return Check("tracer", False, f"not running (socket {config.tracer_socket}); it starts when a container learns",
                     required=False)
    watching = status.get("watching") or []
    return Check("tracer", True, f"running: instance {status.get('instance')}, watching {len(watching)} container(s)",
                 required=False)


def check_denials(config: Config, actions_logged: Path = Path("/proc/sys/kernel/seccomp/actions_logged")) -> Check:
    """Will `syscage denials` see what enforce denies (the runtime passes SECCOMP_FILTER_FLAG_LOG on, and the
    kernel logs errno actions) and what complain logs?"""
    from syscage.logflag import supports_log_flag

    try:
        logged = set(actions_logged.read_text().split())
    except OSError:
        return Check("denials visible", False, f"cannot read {actions_logged}", required=False)
    missing = [a for a in ("errno", "log") if a not in logged]
    if missing:
        return Check("denials visible", False, f"{actions_logged} lacks {' and '.join(missing)}: those denials "
                     "leave no kernel record", f"echo the list with {' '.join(missing)} added into {actions_logged}",
                     required=False)
    flag, why = supports_log_flag(str(config.runtime_path), config.run_dir, write_cache=False)
    if not flag:
        return Check("denials visible", False, f"complain: yes; enforce: no, {why} (use complain mode or crun to "
                     "see them)", required=False)
    return Check("denials visible", True, f"complain and enforce ({why})", required=False)


def run_checks(config: Config) -> list[Check]:
    mounts = _mounts()
    return [
        check_runtime(config),
        check_import("libseccomp", "pyseccomp", "apt-get install libseccomp2; pip install pyseccomp"),
        check_import("bcc", "bcc", "apt-get install python3-bpfcc; the venv needs --system-site-packages"),
        check_kernel_build(),
        check_tracefs(mounts),
        check_seccomp(),
        check_cgroup2(mounts),
        check_apparmor(config),
        check_kprobes(),
        check_containerd(),
        check_store(config.store),
        check_tracer(config),
        check_denials(config),
    ]


def report(checks: list[Check]) -> dict[str, Any]:
    return {"ok": all(c.ok or not c.required for c in checks), "checks": [asdict(c) for c in checks]}
