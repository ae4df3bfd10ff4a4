"""Syscalls that are the same operation by another entry point (seccomp.coverage = "learned+related").

A program learned with one workload and run with another often does the same thing through a sibling
entry point: an in-place edit renames with renameat2 where the learned write used rename; a pipe that
fills waits in poll where the learned run never had to wait; libc picks openat or openat2, stat or statx
by version. One line per group: the names (x86_64, all known to libseccomp: tests/test_related.py), and
why they belong together. Nothing here widens what a process may do to the system beyond what its learned
sibling already allows (no namespace, mount, module, key or tracing syscall is in any group).
"""

from __future__ import annotations

RELATED: tuple[tuple[tuple[str, ...], str], ...] = (
    (("rename", "renameat", "renameat2"), "rename a path; the *at forms take a directory fd, renameat2 flags"),
    (("poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2"),
     "wait for fds to be ready; which one a program uses depends on libc and on whether it has to wait at all"),
    (("epoll_create", "epoll_create1"), "create an epoll instance (epoll_create1 takes flags)"),
    (("readlink", "readlinkat"), "read a symlink's target"),
    (("link", "linkat", "symlink", "symlinkat"), "make a hard or symbolic link (archivers make both)"),
    (("truncate", "ftruncate"), "set a file's length by path or by fd (journals, in-place rewrites)"),
    (("stat", "lstat", "fstat", "newfstatat", "statx"), "read a file's metadata; libc versions pick different ones"),
    (("statfs", "fstatfs"), "read a file system's metadata by path or by fd"),
    (("open", "openat", "openat2", "creat"), "open or create a file; creat is open(O_CREAT|O_WRONLY|O_TRUNC)"),
    (("access", "faccessat", "faccessat2"), "check access to a path"),
    (("mkdir", "mkdirat"), "make a directory"),
    (("mknod", "mknodat"), "make a node (fifos; devices need a capability all the same)"),
    (("unlink", "unlinkat", "rmdir"), "remove a path (unlinkat with AT_REMOVEDIR is rmdir)"),
    (("chmod", "fchmod", "fchmodat"), "change a file's mode"),
    (("chown", "fchown", "lchown", "fchownat"), "change a file's owner (needs a capability all the same)"),
    (("utime", "utimes", "utimensat", "futimesat"), "set a file's times (archivers restore them)"),
    (("getdents", "getdents64"), "read a directory"),
    (("dup", "dup2", "dup3"), "duplicate an fd"),
    (("pipe", "pipe2"), "make a pipe"),
    (("read", "readv", "pread64", "preadv", "preadv2"), "read from an fd"),
    (("write", "writev", "pwrite64", "pwritev", "pwritev2"), "write to an fd"),
    (("fsync", "fdatasync"), "flush a file to disk"),
    (("accept", "accept4"), "accept a connection"),
    (("sendto", "sendmsg", "sendmmsg"), "send on a socket"),
    (("recvfrom", "recvmsg", "recvmmsg"), "receive on a socket"),
    (("nanosleep", "clock_nanosleep"), "sleep"),
    (("time", "gettimeofday", "clock_gettime"), "read the clock (usually in the vDSO, a syscall as fallback)"),
    (("getrlimit", "prlimit64"), "read a resource limit"),
    (("wait4", "waitid"), "wait for a child"),
    (("signalfd", "signalfd4"), "signals through an fd"),
    (("eventfd", "eventfd2"), "an event counter fd"),
    (("inotify_init", "inotify_init1"), "an inotify instance"),
    (("getxattr", "lgetxattr", "fgetxattr"), "read an extended attribute (archivers with --xattrs, cp -a)"),
    (("listxattr", "llistxattr", "flistxattr"), "list extended attributes"),
    (("setxattr", "lsetxattr", "fsetxattr"), "set an extended attribute"),
)


def related_to(learned: set[str]) -> dict[str, str]:
    """Each syscall in a group with a learned member, not learned itself -> why (naming the learned ones)."""
    out: dict[str, str] = {}
    for names, why in RELATED:
        seen = sorted(set(names) & learned)
        if not seen:
            continue
        for name in names:
            if name not in learned and name not in out:
                out[name] = f"same operation as {', '.join(seen)} ({why})"
    return out
