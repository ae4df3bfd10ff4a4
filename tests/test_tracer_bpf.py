"""tracer_bpf.container_identity on a fake /proc and cgroup tree: which cgroup and PID namespace a watch
is keyed on, and the one-line reasons a process cannot be watched."""

from __future__ import annotations

import builtins
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from syscage.hooks.daemon import tracer_bpf

PID = 4242
MOUNTINFO = ("24 1 0:22 / /sys/fs/cgroup rw,nosuid - {kind} cgroup2 rw\n"
             "25 1 0:23 / /proc rw - proc proc rw\n")


class FakeHost:
    """/proc/<pid>/cgroup, /proc/<pid>/ns/pid and /proc/self/mountinfo under `root`, with the cgroup2
    mount at root/sys/fs/cgroup."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        (root / "proc" / str(PID) / "ns").mkdir(parents=True)
        (root / "proc" / "self").mkdir(parents=True)
        (root / "proc" / str(PID) / "ns" / "pid").write_text("")
        self.mountinfo("cgroup2")
        real_open, real_stat = builtins.open, os.stat

        def fake_open(path: str, *args: object, **kwargs: object) -> object:
            return real_open(self.here(path), *args, **kwargs)  # type: ignore[call-overload]

        def fake_stat(path: str | Path, *args: object, **kwargs: object) -> os.stat_result:
            return real_stat(self.here(path), *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(tracer_bpf, "open", fake_open, raising=False)
        monkeypatch.setattr(tracer_bpf, "os", SimpleNamespace(stat=fake_stat))

    def here(self, path: str | Path) -> str:
        path = str(path)
        return str(self.root / path.lstrip("/")) if path.startswith(("/proc", "/sys")) else path

    def mountinfo(self, kind: str) -> None:
        (self.root / "proc" / "self" / "mountinfo").write_text(MOUNTINFO.format(kind=kind))

    def cgroup(self, lines: str, make: str | None = None) -> Path | None:
        (self.root / "proc" / str(PID) / "cgroup").write_text(lines)
        if make is None:
            return None
        directory = self.root / "sys" / "fs" / "cgroup" / make
        directory.mkdir(parents=True)
        return directory


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHost:
    return FakeHost(tmp_path, monkeypatch)


def test_the_cgroup_v2_directory_and_pid_namespace_identify_a_container(fake: FakeHost) -> None:
    directory = fake.cgroup("12:cpuset:/old-v1\n0::/system.slice/runc-c1.scope\n", "system.slice/runc-c1.scope")
    assert directory is not None
    identity = tracer_bpf.container_identity(PID)
    ns = os.stat(fake.root / "proc" / str(PID) / "ns" / "pid")
    where = Path("/sys/fs/cgroup/system.slice/runc-c1.scope")
    assert identity == tracer_bpf.ContainerIdentity(directory.stat().st_ino, where, ns.st_dev, ns.st_ino)


@pytest.mark.parametrize(("cgroup", "reason"), [
    ("12:cpuset:/only-v1\n", "no cgroup v2 membership"),
    ("0::/\n", "no cgroup v2 of its own"),
])
def test_a_process_without_a_cgroup_of_its_own_cannot_be_watched(fake: FakeHost, cgroup: str, reason: str) -> None:
    fake.cgroup(cgroup)
    with pytest.raises(LookupError, match=reason):
        tracer_bpf.container_identity(PID)


def test_no_cgroup2_mount_is_said(fake: FakeHost) -> None:
    fake.cgroup("0::/c1\n", "c1")
    fake.mountinfo("cgroup")  # v1 only
    with pytest.raises(LookupError, match="no cgroup2 file system is mounted"):
        tracer_bpf.container_identity(PID)


def test_a_gone_process_or_cgroup_is_an_os_error(fake: FakeHost) -> None:
    with pytest.raises(OSError):
        tracer_bpf.container_identity(PID + 1)  # no such /proc entry
    fake.cgroup("0::/vanished\n")  # its cgroup directory is gone already
    with pytest.raises(OSError):
        tracer_bpf.container_identity(PID)


def test_cgroup_mounts_lists_v1_and_v2(fake: FakeHost) -> None:
    (fake.root / "proc" / "self" / "mountinfo").write_text(
        "24 1 0:22 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
        "25 1 0:23 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset\n"
        "26 1 0:24 / /proc rw - proc proc rw\n")
    assert tracer_bpf.cgroup_mounts() == [Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/cpuset")]
    assert tracer_bpf.cgroup2_mount() == Path("/sys/fs/cgroup/unified")
