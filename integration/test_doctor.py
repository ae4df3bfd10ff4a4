"""syscage doctor on this host: every line matches what the host really has."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from integration.env import VENV_BIN, Env


def test_doctor_tells_the_truth_about_this_host(env: Env) -> None:
    env.run(env.bundle(["/bin/true"], profile=env.name("doctor")))  # a tracer is running now (idle_timeout 600)
    result = subprocess.run([str(VENV_BIN / "syscage"), "doctor", "--json"], capture_output=True, text=True,
                            timeout=120, env=os.environ.copy(), stdin=subprocess.DEVNULL)
    report = json.loads(result.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert result.returncode == 0 and report["ok"], result.stdout
    mounts = Path("/proc/mounts").read_text()
    release = os.uname().release
    facts = {
        "runtime": shutil.which("runc") is not None,
        "libseccomp": True,
        "bcc": True,
        "kernel headers": Path(f"/lib/modules/{release}/build").exists(),
        "tracefs": " tracefs " in mounts,
        "seccomp": "errno" in Path("/proc/sys/kernel/seccomp/actions_avail").read_text().split(),
        "cgroup v2": " cgroup2 " in mounts,
        "apparmor": Path("/sys/module/apparmor/parameters/enabled").exists(),
        "capability tracing": Path("/sys/kernel/tracing/kprobe_events").exists(),
        "store": True,
        "tracer": env.tracer_pid() is not None,
    }
    for name, fact in facts.items():
        assert checks[name]["ok"] == fact, checks[name]
    # This host: no AppArmor, no kprobes (see docs); said plainly and not counted as failures.
    assert not checks["apparmor"]["ok"] and not checks["apparmor"]["required"]
    assert not checks["capability tracing"]["ok"] and not checks["capability tracing"]["required"]
    assert str(env.store) in checks["store"]["detail"]
    # runc 1.1.5 refuses seccomp flags (measured in integration/test_denials.py): enforce denials leave no record.
    runtime = subprocess.run(["runc", "--version"], capture_output=True, text=True, check=True).stdout
    assert not checks["denials visible"]["required"]
    if runtime.startswith("runc version 1.1."):
        assert not checks["denials visible"]["ok"] and "refuses seccomp flags" in checks["denials visible"]["detail"]
    text = subprocess.run([str(VENV_BIN / "syscage"), "doctor"], capture_output=True, text=True, timeout=120,
                          env=os.environ.copy(), stdin=subprocess.DEVNULL)
    assert text.returncode == 0 and len(text.stdout.splitlines()) == len(checks) + 1
    assert "FAIL" not in text.stdout


def test_doctor_fails_when_the_runtime_is_missing(env: Env, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(env.config_path.read_text() + '\n[runtime]\npath = "/nonexistent/runc"\n'
                      if "[runtime]" not in env.config_path.read_text() else
                      env.config_path.read_text().replace("[runtime]", '[runtime]\npath = "/nonexistent/runc"'))
    result = subprocess.run([str(VENV_BIN / "syscage"), "doctor"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "SYSCAGE_CONFIG": str(config)}, stdin=subprocess.DEVNULL)
    assert result.returncode == 1
    [line] = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert "runtime" in line and "-- fix:" in line
