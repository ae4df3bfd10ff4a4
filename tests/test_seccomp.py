from __future__ import annotations

import errno
import os

import pyseccomp
import pytest

from syscage.errors import SyscageError
from syscage.profile import new_profile
from syscage.seccomp import render, render_profile, validate
from syscage.syscalls import names_for, native_arch, syscall_name, syscall_number


def test_render_shape() -> None:
    s = render(["write", "read", "read"], errno.EPERM)
    assert s == {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM,
                 "architectures": [native_arch()],
                 "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]}


def test_unknown_name_is_refused() -> None:
    with pytest.raises(SyscageError, match="does not know"):
        validate(render(["read", "not_a_syscall"], 1), "web")


def test_names_come_from_libseccomp() -> None:
    assert syscall_name(syscall_number("execve")) == "execve"  # type: ignore[arg-type]
    known, unknown = names_for([syscall_number("read"), 99999])  # type: ignore[list-item]
    assert known == ["read"] and unknown == [99999]


def test_rendered_filter_really_denies_with_errno() -> None:
    """Load the rendered allow-list in a forked child: an allowed call works, mkdir fails with EACCES."""
    profile = new_profile("t", native_arch(), "t")
    needed = ["write", "exit_group", "exit", "getpid", "rt_sigreturn", "brk", "mmap", "munmap", "futex"]
    profile["syscalls"] = {n: {"runs": 1} for n in needed}
    seccomp = render_profile(profile, errno.EACCES)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            filt = pyseccomp.SyscallFilter(pyseccomp.ERRNO(seccomp["defaultErrnoRet"]))
            for name in seccomp["syscalls"][0]["names"]:
                filt.add_rule(pyseccomp.ALLOW, name)
            filt.load()
            os.getpid()
            try:
                os.mkdir("/tmp/syscage-should-not-exist")
                os.write(write_fd, b"created")
            except OSError as exc:
                os.write(write_fd, str(exc.errno).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    result = os.read(read_fd, 100).decode()
    os.waitpid(pid, 0)
    assert result == str(errno.EACCES)
