"""`make install` / `make uninstall` into a temporary prefix: what install adds, uninstall removes."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMANDS = ["syscage", "syscage-hook", "syscage-tracer", "syscage-runtime", "containerd-shim-syscage-v2",
            "syscage-runtime-py", "containerd-shim-syscage-v2-py"]


def make(target: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    dirs = {"PREFIX": tmp / "usr", "SYSCONFDIR": tmp / "etc" / "syscage", "STATEDIR": tmp / "var" / "syscage",
            "LOGDIR": tmp / "log" / "syscage", "SYSTEMDDIR": tmp / "systemd"}
    return subprocess.run(["make", "-s", target, *(f"{k}={v}" for k, v in dirs.items())], cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)


def test_install_then_uninstall(tmp_path: Path) -> None:
    (tmp_path / "systemd").mkdir()
    installed = make("install", tmp_path)
    assert installed.returncode == 0, installed.stderr
    for command in COMMANDS:
        assert (tmp_path / "usr" / "bin" / command).exists()
    help_text = subprocess.run([tmp_path / "usr" / "bin" / "syscage", "--help"], capture_output=True, text=True,
                               check=True).stdout
    assert "profiles/NAME/seccomp.json" in help_text
    # The commands containerd and runc users call are the compiled launchers; through the /usr/local/bin link, a
    # call they hand to Python (a global option they do not read) reaches the Python entry and then runc.
    for launcher in ("syscage-runtime", "containerd-shim-syscage-v2"):
        assert (tmp_path / "usr" / "bin" / launcher).read_bytes()[:4] == b"\x7fELF"
    version = subprocess.run([tmp_path / "usr" / "bin" / "syscage-runtime", "--version"], capture_output=True,
                             text=True, check=False, env={"SYSCAGE_CONFIG": str(tmp_path / "none.toml")})
    assert version.returncode == 0 and version.stdout.startswith("runc version"), version
    config = tmp_path / "etc" / "syscage" / "config.toml"
    assert config.read_text() == (REPO / "config" / "config.toml").read_text()
    assert (tmp_path / "systemd" / "syscage-tracer.service").exists()
    assert (tmp_path / "var" / "syscage").is_dir()

    config.write_text(config.read_text() + "\n# edited by the operator\n")
    again = make("install", tmp_path)
    assert again.returncode == 0 and "kept existing" in again.stdout
    assert config.read_text().endswith("# edited by the operator\n")

    removed = make("uninstall", tmp_path)
    assert removed.returncode == 0, removed.stderr
    assert not (tmp_path / "usr" / "lib" / "syscage").exists()
    assert not any((tmp_path / "usr" / "bin").iterdir())
    assert not (tmp_path / "systemd" / "syscage-tracer.service").exists()
    assert config.exists() and "kept" in removed.stdout  # the operator's edits are never thrown away
    assert not (tmp_path / "var" / "syscage").exists()  # it was empty, so it goes
