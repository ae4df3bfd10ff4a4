"""syscage doctor's checks on made-up hosts: each failing one says why and how to fix it."""

from __future__ import annotations

from pathlib import Path

from syscage import doctor
from syscage.config import Config


def test_runtime_missing_fails_with_its_fix(tmp_path: Path) -> None:
    check = doctor.check_runtime(Config(runtime_path=tmp_path / "runc"))
    assert not check.ok and check.required and "runtime.path" in check.fix
    assert check.line().startswith("FAIL  runtime") and "-- fix:" in check.line()


def test_kernel_headers_and_btf(tmp_path: Path) -> None:
    btf = tmp_path / "vmlinux"
    btf.write_text("")
    missing = doctor.check_kernel_build("6.18", tmp_path / "modules", btf)
    assert not missing.ok and "BTF present" in missing.detail and "linux-headers" in missing.fix
    (tmp_path / "modules" / "6.18" / "build" / "include").mkdir(parents=True)
    assert doctor.check_kernel_build("6.18", tmp_path / "modules", tmp_path / "none").ok


def test_mounts() -> None:
    assert not doctor.check_tracefs([("/", "ext4")]).ok
    assert doctor.check_tracefs([("/sys/kernel/tracing", "tracefs")]).ok
    assert "mount -t tracefs" in doctor.check_tracefs([]).fix
    assert not doctor.check_cgroup2([("/sys/fs/cgroup", "tmpfs")]).ok


def test_seccomp(tmp_path: Path) -> None:
    status, actions = tmp_path / "status", tmp_path / "actions"
    status.write_text("Name:\tx\nSeccomp:\t0\n")
    actions.write_text("kill_process errno log allow\n")
    assert doctor.check_seccomp(status, actions).ok
    actions.write_text("kill_process allow\n")
    assert not doctor.check_seccomp(status, actions).ok


def test_apparmor_absent_is_a_failure_only_when_required(tmp_path: Path) -> None:
    auto = doctor.check_apparmor(Config(), tmp_path / "enabled", tmp_path)
    assert not auto.ok and not auto.required and "seccomp only" in auto.detail
    required = doctor.check_apparmor(Config(apparmor_mode="required"), tmp_path / "enabled", tmp_path)
    assert not required.ok and required.required and required.line().startswith("FAIL")
    (tmp_path / "enabled").write_text("Y\n")
    (tmp_path / "profiles").write_text("")
    assert doctor.check_apparmor(Config(), tmp_path / "enabled", tmp_path).ok


def test_kprobes(tmp_path: Path) -> None:
    assert not doctor.check_kprobes((tmp_path,)).ok
    (tmp_path / "kprobe_events").write_text("")
    assert doctor.check_kprobes((tmp_path,)).ok


def test_containerd_entry_in_the_config_or_its_dropin(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    assert not doctor.check_containerd(config).ok
    config.write_text('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]\n'
                      'runtime_type = "io.containerd.runc.v2"\n')
    assert "no syscage runtime" in doctor.check_containerd(config).detail
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "syscage.toml").write_text(
        'version = 3\n[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.syscage]\n'
        'runtime_type = "io.containerd.syscage.v2"\n')
    check = doctor.check_containerd(config)
    assert check.ok and "'syscage'" in check.detail
    config.write_text('version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.sc.options]\n'
                      'BinaryName = "/usr/local/bin/syscage-runtime"\n')
    (tmp_path / "conf.d" / "syscage.toml").unlink()
    assert doctor.check_containerd(config).ok


def test_store(tmp_path: Path) -> None:
    assert doctor.check_store(tmp_path / "a" / "b").ok
    assert "will be created" in doctor.check_store(tmp_path / "a").detail
    assert not list(tmp_path.iterdir())  # checking writes nothing
