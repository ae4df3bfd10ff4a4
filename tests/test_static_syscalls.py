"""Static analysis of real Debian binaries (the host's /usr/bin, glibc) and of a static one built here."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from syscage.coverage import additions
from syscage.static_syscalls import NotAnalysable, analyse_programs, resolve_program

PROBE = Path(__file__).parent / "fixtures" / "static_probe.c"


def _rootfs(tmp_path: Path, static: bool) -> Path:
    """The host's / would do for dynamic binaries; the probe goes into a small rootfs that links to it."""
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    flags = ["-static"] if static else []
    subprocess.run(["gcc", *flags, "-O1", "-o", str(root / "usr" / "bin" / "probe"), str(PROBE)], check=True)
    if not static:  # glibc and the loader, as Debian lays them out (merged /usr)
        libs = root / "usr" / "lib" / "x86_64-linux-gnu"
        libs.mkdir(parents=True)
        for name in ("libc.so.6", "ld-linux-x86-64.so.2"):
            shutil.copy(f"/usr/lib/x86_64-linux-gnu/{name}", libs / name)
        (root / "lib").symlink_to("usr/lib")
        (root / "lib64").mkdir()
        (root / "lib64" / "ld-linux-x86-64.so.2").symlink_to("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    return root


@pytest.mark.parametrize("static", [True, False])
def test_a_probe_can_make_its_wrappers_and_constant_syscalls(tmp_path: Path, static: bool) -> None:
    root = _rootfs(tmp_path, static)
    found = analyse_programs(root, ["probe"], tmp_path / "cache")
    assert {"rename", "poll", "keyctl", "getcpu", "write", "exit_group"} <= set(found["syscalls"])
    if not static:  # found through libc's exports: rename is libc's, called by the probe
        assert any("libc.so.6: rename (called by /usr/bin/probe)" in w for w in found["syscalls"]["rename"])
        assert any("ld-linux" in w for w in found["syscalls"]["mmap"])
    profile = {"syscalls": {"read": {}, "write": {}}, "static": found}
    added = additions(profile, "learned+static")
    assert {"rename", "poll", "getcpu"} <= set(added)
    assert "keyctl" not in added  # reachable, but on the dangerous list: never added by the analysis


def test_real_debian_binaries_and_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = analyse_programs(Path("/"), ["gzip", "tar"], cache)
    assert {"/usr/bin/gzip", "/usr/bin/tar"} <= set(first["binaries"])
    assert not any(b["cached"] for b in first["binaries"].values())
    # gzip restores a file's owner, mode and times; tar makes links and reads them back.
    for name in ("read", "write", "openat", "close", "fchown", "fchmod", "utimensat", "linkat", "symlinkat",
                 "readlinkat", "unlinkat"):
        assert name in first["syscalls"], name
    again = analyse_programs(Path("/"), ["gzip", "tar"], cache)
    assert all(b["cached"] for b in again["binaries"].values())
    assert again["syscalls"] == first["syscalls"]
    dangerous = {"keyctl", "bpf", "userfaultfd", "perf_event_open", "unshare", "mount", "setns"}
    profile = {"syscalls": {"read": {}}, "static": first}
    assert not dangerous & set(additions(profile, "learned+static"))


def test_what_cannot_be_analysed_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "script").write_text("#!/bin/sh\n")
    with pytest.raises(NotAnalysable, match="not found"):
        resolve_program(tmp_path, "nothing-here")
    with pytest.raises(NotAnalysable, match="script"):
        analyse_programs(tmp_path, ["script"], None)
    (tmp_path / "bin" / "escape").symlink_to("../../../../usr/bin/gzip")  # resolved inside the rootfs, not the host
    with pytest.raises(NotAnalysable, match="not found"):
        resolve_program(tmp_path, "/bin/escape")


GOPROBE = Path(__file__).parent.parent / "integration" / "programs" / "goprobe.go"


@pytest.mark.skipif(shutil.which("go") is None, reason="needs Debian's golang-go (make deps installs it)")
@pytest.mark.parametrize("stripped", [False, True])
def test_a_go_binary_s_syscalls_through_its_runtime_and_the_syscall_package(tmp_path: Path, stripped: bool) -> None:
    """Go makes syscalls through its runtime's assembly (constant in AX before SYSCALL) and through
    syscall.Syscall/Syscall6/RawSyscall (register ABI: the number is the first argument, in RAX). Stripped (as
    Debian ships Go programs), the dispatchers are found by their names in .gopclntab."""
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    home = tmp_path / "go"
    flags = ["-ldflags=-s -w"] if stripped else []
    subprocess.run(["go", "build", *flags, "-o", str(root / "usr" / "bin" / "goprobe"), str(GOPROBE)], check=True,
                   cwd=GOPROBE.parent, env={"PATH": "/usr/bin:/bin", "CGO_ENABLED": "0", "HOME": str(home),
                                            "GOCACHE": str(home / "cache"), "GO111MODULE": "off"})
    found = analyse_programs(root, ["goprobe"], None)
    runtime = {"mmap", "futex", "clone", "rt_sigaction", "sigaltstack", "nanosleep", "epoll_pwait", "tgkill"}
    package = {"renameat", "symlinkat", "readlinkat", "fchmodat", "utimensat", "mkdirat", "unlinkat", "getdents64",
               "socket", "bind", "listen", "accept4", "connect", "setsockopt", "getsockname"}
    assert runtime | package <= set(found["syscalls"]), sorted(runtime | package - set(found["syscalls"]))
    assert found["syscalls"]["renameat"] == ["/usr/bin/goprobe (syscall instruction)"]
    profile = {"syscalls": {"read": {}}, "static": found}
    assert not {"keyctl", "bpf", "unshare", "mount", "ptrace", "setns"} & set(additions(profile, "learned+static"))
