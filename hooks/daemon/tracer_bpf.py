"""The BPF side of the tracer: compile tracer.c once, then hand out per-container slots.

A slot is a container's row in the BPF maps: its syscall bitmaps and counters. User space only
touches the maps when a container is added or flushed; nothing crosses to user space per syscall,
so nothing can be dropped under load.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from syscage.arguments import ARGUMENTS, CLONE3_AS
from syscage.hooks.daemon.btf import walk_offsets
from syscage.syscalls import syscall_number

BPF_SOURCE = Path(__file__).with_name("tracer.c")

NR_WORDS = 9  # bitmaps cover syscall numbers 0..575 (x86_64 and i386 top out near 470, x32 at 547)
NR_SETS = 4
SET_ALL, SET_PRE_EXEC, SET_I386, SET_X32 = 0, 1, 2, 3
# Compat ABIs the tracer tells apart from the native one: name -> its set (numbers as that ABI numbers them).
COMPAT_SETS = {"i386": SET_I386, "x32": SET_X32}
MODE_SECCOMP, MODE_EXEC = 1, 2
# BPF programs of tracer.c: those that may be attached, and those reached by tail call (index in `progs`).
PROGRAMS = ("on_sys_enter", "on_mediated", "on_cap_capable")
PROG_MEDIATED = 0

# Counter names, in the order of their index in the `counters` map.
COUNTERS = ("armed_threads", "armed_map_full", "nr_out_of_range", "cutover_seccomp", "cutover_exec", "tsync",
            "compat_i386", "compat_x32", "paths_unresolved", "paths_truncated", "paths_fault", "paths_dropped",
            "sockets_out_of_range", "caps_out_of_range")
# Counters of file, socket and capability events that could not be recorded.
PATH_LOSSES = ("paths_unresolved", "paths_truncated", "paths_fault", "paths_dropped")

PATH_LEN = 256          # bytes of a path, its NUL included; a longer one is counted as truncated
PATHS_PER_SLOT = 4096   # distinct paths one container may record
NR_FAMILIES = 48        # address families 0..47 (AF_MAX is 46 in 6.x)
# Access bits the BPF program sets: read, write (O_WRONLY, O_RDWR, O_TRUNC, truncate, chmod, chown), append,
# create, exec, delete, link, lock (flock, fcntl locks), mmap-exec (mmap of a file with PROT_EXEC).
PATH_ACC = {"R": 1, "W": 2, "A": 4, "C": 8, "X": 16, "D": 32, "L": 64, "K": 512, "M": 1024}
# The same bits -> profile.json's access kinds (syscage.apparmor).
PATH_ACCESS = tuple((bit, name.lower()) for name, bit in PATH_ACC.items())
PATH_ACC_DIR = 128  # the path is a directory (mkdir, rmdir): AppArmor names it with a final "/"
PATH_ACC_EITHER = 256  # a file or a directory, not known before the call (rename, chmod): both names
# The dentry walk that resolves a relative name's directory: at most this many components (a power of two)
# and this many steps (components plus mount crossings); deeper is counted as truncated.
WALK_COMPONENTS = 16
WALK_STEPS = 24
# SOCK_* numbers -> AppArmor's socket type names.
SOCK_TYPES = {1: "stream", 2: "dgram", 3: "raw", 4: "rdm", 5: "seqpacket", 10: "packet"}
# Syscalls whose arguments are read for AppArmor learning.
MEDIATED = ("open", "openat", "openat2", "creat", "execve", "execveat", "socket", "socketpair", "unlink", "unlinkat",
            "rmdir", "mkdir", "mkdirat", "mknod", "mknodat", "link", "linkat", "symlink", "symlinkat", "rename",
            "renameat", "renameat2", "truncate", "chmod", "fchmodat", "chown", "lchown", "fchownat", "flock", "fcntl",
            "mmap")
# Argument learning (syscage.arguments): distinct values one container may record per table entry (more is an
# overflow: the syscall is then allowed unconditionally), and the map's size per slot.
ARG_VALUES_CAP = 64
ARG_VALUES_PER_SLOT = 256


class WatchInfo(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_uint32), ("mode", ctypes.c_uint32), ("gen", ctypes.c_uint32),
                ("pad", ctypes.c_uint32), ("pidns_dev", ctypes.c_uint64), ("pidns_ino", ctypes.c_uint64)]


@dataclass
class SlotReport:
    syscalls: list[int]
    pre_exec: list[int]
    counters: dict[str, int]
    compat: dict[str, list[int]]  # compat ABI name -> the syscall numbers made through it
    files: dict[bytes, list[str]]  # absolute container path -> access kinds
    sockets: list[tuple[int, int]]  # (address family, socket type)
    capabilities: list[int]  # capability numbers checked (empty and meaningless when not traced)
    capabilities_traced: bool
    # syscall -> (masked values seen, overflowed): the learned arguments of syscage.arguments.ARGUMENTS
    arguments: dict[str, tuple[list[int], bool]]


def bpf_cflags(max_slots: int, max_threads: int, pid_table: int, group_dead: bool,
               offsets: dict[str, int] | None = None) -> list[str]:
    """Every constant tracer.c shares with this module, as -D flags: one source for both sides. `offsets`:
    the kernel struct offsets of hooks.daemon.btf (none: relative names are counted, not resolved)."""
    defines = {
        "MAX_SLOTS": max_slots, "PID_TABLE": pid_table, "MAX_OVERFLOW": max_threads, "NR_WORDS": NR_WORDS,
        "NR_SETS": NR_SETS, "SET_ALL": SET_ALL, "SET_PRE_EXEC": SET_PRE_EXEC, "SET_I386": SET_I386,
        "SET_X32": SET_X32, "MODE_SECCOMP": MODE_SECCOMP, "MODE_EXEC": MODE_EXEC, "NR_COUNTERS": len(COUNTERS),
        "PATH_LEN": PATH_LEN, "PATHS_PER_SLOT": PATHS_PER_SLOT, "MAX_PATHS": max_slots * 256,
        "NR_FAMILIES": NR_FAMILIES, "NR_ARG_ENTRIES": len(ARGUMENTS), "ARG_VALUES_CAP": ARG_VALUES_CAP,
        "MAX_ARG_VALUES": max_slots * ARG_VALUES_PER_SLOT,
        "PATH_ACC_DIR": PATH_ACC_DIR,
        "PATH_ACC_EITHER": PATH_ACC_EITHER, "WALK_COMPONENTS": WALK_COMPONENTS,
        "WALK_STEPS": WALK_STEPS, "PROG_MEDIATED": PROG_MEDIATED,
    }
    defines |= offsets or {}
    defines |= {f"PATH_ACC_{name}": bit for name, bit in PATH_ACC.items()}
    defines |= {f"NR_{name.upper()}": syscall_number(name) for name in ("prctl", "seccomp", "execve", "execveat")}
    defines |= {f"SC_{name.upper()}": syscall_number(name) for name in MEDIATED}
    defines |= {f"CNT_{name.upper()}": i for i, name in enumerate(COUNTERS)}
    return [f"-D{name}={value}" for name, value in defines.items()] + (["-DHAVE_GROUP_DEAD"] if group_dead else [])


def path_access(bits: int) -> list[str]:
    return [kind for bit, kind in PATH_ACCESS if bits & bit]


def container_path(raw: bytes, dirlen: int) -> bytes | None:
    """The absolute path a recorded name stands for: `raw[:dirlen]` is a directory the kernel resolved (its
    dentries: no symlinks in it), the rest the name as the process gave it. "." and empty components go;
    ".." takes a component of the resolved directory exactly, but after a component of the given name it
    could follow a symlink: that name is None (unresolved), never guessed."""
    parts = [p for p in raw[:dirlen].split(b"/") if p]
    own = 0  # components that came from the given name
    for part in raw[dirlen:].split(b"/"):
        if part in (b"", b"."):
            continue
        if part == b"..":
            if own:
                return None
            if parts:
                parts.pop()
            continue
        parts.append(part)
        own += 1
    return b"/" + b"/".join(parts)


def bits_to_numbers(words: list[int], base: int = 0) -> list[int]:
    return [base + w * 64 + b for w, word in enumerate(words) for b in range(64) if word >> b & 1]


class SyscallRecorder:
    """Owns the loaded BPF program and its maps."""

    def __init__(self, max_slots: int, max_threads: int) -> None:
        from bcc import BPF  # heavy (LLVM): only the tracer process imports it

        cflags = bpf_cflags(max_slots, max_threads, pid_max(),
                            tracepoint_has_field("sched/sched_process_exit", "group_dead"), walk_offsets())
        self.max_slots = max_slots
        self.bpf = BPF(src_file=str(BPF_SOURCE).encode(), cflags=cflags)
        self.watch = self.bpf["watch"]
        self.slot_gen = self.bpf["slot_gen"]
        self.seen = self.bpf["seen"]
        self.counters = self.bpf["counters"]
        self.paths = self.bpf["paths"]
        self.path_count = self.bpf["path_count"]
        self.sockets = self.bpf["sockets"]
        self.caps = self.bpf["caps"]
        self.arg_values = self.bpf["arg_values"]
        self.arg_count = self.bpf["arg_count"]
        self._load_arg_rules()
        # on_sys_enter reaches on_mediated by tail call (the two together are too large for one program).
        mediated = self.bpf.load_func(b"on_mediated", BPF.RAW_TRACEPOINT)
        self.bpf["progs"][ctypes.c_int(PROG_MEDIATED)] = ctypes.c_int(mediated.fd)
        self.capabilities_traced = self._attach_cap_capable()
        self.free_slots = list(range(max_slots - 1, -1, -1))
        self.generation = 0
        self.sys_enter_attached = False
        _release_compiler_memory()

    def add(self, cgroup_id: int, pidns_dev: int, pidns_ino: int, exec_mode: bool) -> int:
        """Start watching a container; returns its slot. Raises IndexError when all slots are taken."""
        if not self.free_slots:
            raise IndexError("no free slot")
        key = ctypes.c_uint64(cgroup_id)
        if key in self.watch:
            raise KeyError("cgroup already watched")
        slot = self.free_slots.pop()
        self._zero(slot)
        self.generation += 1
        self.slot_gen[ctypes.c_uint32(slot)] = ctypes.c_uint32(self.generation)
        self.watch[key] = WatchInfo(slot, MODE_EXEC if exec_mode else MODE_SECCOMP, self.generation, 0,
                                    pidns_dev, pidns_ino)
        self._attach_sys_enter()
        return slot

    def collect(self, slot: int) -> SlotReport:
        def words(which: int) -> list[int]:
            start = (slot * NR_SETS + which) * NR_WORDS
            return [self.seen[ctypes.c_uint32(start + i)].value for i in range(NR_WORDS)]

        base = slot * len(COUNTERS)
        counters = {name: self.counters[ctypes.c_uint32(base + i)].value for i, name in enumerate(COUNTERS)}
        files, unresolved = self._files(slot)
        counters["paths_unresolved"] += unresolved
        compat = {abi: bits_to_numbers(words(which)) for abi, which in COMPAT_SETS.items()}
        sockets = [(family, kind) for family in range(NR_FAMILIES)
                   for kind in bits_to_numbers([self.sockets[ctypes.c_uint32(slot * NR_FAMILIES + family)].value])]
        return SlotReport(bits_to_numbers(words(SET_ALL)), bits_to_numbers(words(SET_PRE_EXEC)), counters,
                          {abi: numbers for abi, numbers in compat.items() if numbers}, files, sockets,
                          bits_to_numbers([self.caps[ctypes.c_uint32(slot)].value]), self.capabilities_traced,
                          self._arguments(slot))

    def _load_arg_rules(self) -> None:
        """Tell the program which argument of which syscall to record (clone3's flags count as clone's)."""
        rules = self.bpf["arg_rules"]
        for i, entry in enumerate(ARGUMENTS):
            mask = entry.mask if entry.kind == "flags" else (1 << 64) - 1
            targets = [(entry.syscall, entry.index, 0)] + ([("clone3", 0, 1)] if entry.syscall == CLONE3_AS else [])
            for name, index, in_memory in targets:
                nr = syscall_number(name)
                if nr is None or nr >= NR_WORDS * 64:
                    continue
                rule = rules[ctypes.c_uint32(nr)]
                rule.entry, rule.index, rule.mask, rule.in_memory = i + 1, index, mask, in_memory
                rules[ctypes.c_uint32(nr)] = rule

    def _arguments(self, slot: int) -> dict[str, tuple[list[int], bool]]:
        values: dict[int, list[int]] = {}
        for key in list(self.arg_values):
            if key.slot == slot:
                values.setdefault(key.entry, []).append(int(key.value))
        out = {}
        for i, entry in enumerate(ARGUMENTS):
            held = self.arg_count[ctypes.c_uint32(slot * len(ARGUMENTS) + i)].value
            out[entry.syscall] = (sorted(values.get(i, [])), held > ARG_VALUES_CAP)
        return out

    def _forget_arguments(self, slot: int) -> None:
        for key in [k for k in self.arg_values if k.slot == slot]:
            with contextlib.suppress(KeyError):
                del self.arg_values[key]
        for i in range(len(ARGUMENTS)):
            self.arg_count[ctypes.c_uint32(slot * len(ARGUMENTS) + i)] = ctypes.c_uint64(0)

    def _files(self, slot: int) -> tuple[dict[bytes, list[str]], int]:
        """The slot's paths (any generation: stale ones of a released slot are dropped at release), and how
        many names could not be made absolute."""
        files: dict[bytes, set[str]] = {}
        unresolved = 0
        for key, value in self.paths.items():
            if key.slot != slot:
                continue
            path = container_path(bytes(key.path).split(b"\0", 1)[0], key.dirlen)
            if path is None:
                unresolved += 1
                continue
            names = [path]
            if value.value & (PATH_ACC_DIR | PATH_ACC_EITHER) and not path.endswith(b"/"):
                names = [path + b"/"] + ([path] if value.value & PATH_ACC_EITHER else [])
            for name in names:
                files.setdefault(name, set()).update(path_access(value.value))
        return {p: [k for _, k in PATH_ACCESS if k in kinds] for p, kinds in files.items()}, unresolved

    def _forget_paths(self, slot: int) -> None:
        for key in [k for k in self.paths if k.slot == slot]:
            with contextlib.suppress(KeyError):
                del self.paths[key]
        self.path_count[ctypes.c_uint32(slot)] = ctypes.c_uint64(0)

    def _attach_cap_capable(self) -> bool:
        """Capabilities are traced only where the kernel has kprobes (not on every kernel: then False)."""
        if not any(os.path.exists(f"{root}/kprobe_events") for root in ("/sys/kernel/tracing",
                                                                          "/sys/kernel/debug/tracing")):
            return False  # no kprobes in this kernel (asking bcc would only print its error)
        try:
            self.bpf.attach_kprobe(event=b"cap_capable", fn_name=b"on_cap_capable")
        except Exception:  # bcc raises plain Exception when the kernel cannot attach
            return False
        return True

    def remove(self, cgroup_id: int, slot: int) -> None:
        """Stop watching: forget the cgroup; a new generation makes any thread still armed for it stale."""
        key = ctypes.c_uint64(cgroup_id)
        if key in self.watch:
            del self.watch[key]
        self.slot_gen[ctypes.c_uint32(slot)] = ctypes.c_uint32(0)
        self._forget_paths(slot)
        self._forget_arguments(slot)
        self.free_slots.append(slot)
        if len(self.free_slots) == self.max_slots:
            self._detach_sys_enter()

    # The syscall tracepoint is the only part with a host-wide cost (every syscall of every process
    # takes the traced path while it is attached): attach it only while a container is watched.
    def _attach_sys_enter(self) -> None:
        if not self.sys_enter_attached:
            self.bpf.attach_raw_tracepoint(tp=b"sys_enter", fn_name=b"on_sys_enter")
            self.sys_enter_attached = True

    def _detach_sys_enter(self) -> None:
        if self.sys_enter_attached:
            self.bpf.detach_raw_tracepoint(tp=b"sys_enter")
            self.sys_enter_attached = False
        # Nothing is watched: no TSYNC process can be armed any more, so stop checking for them.
        self.bpf["globals"][ctypes.c_uint32(0)] = ctypes.c_uint32(0)

    def _zero(self, slot: int) -> None:
        start = slot * NR_SETS * NR_WORDS
        for i in range(NR_SETS * NR_WORDS):
            self.seen[ctypes.c_uint32(start + i)] = ctypes.c_uint64(0)
        base = slot * len(COUNTERS)
        for i in range(len(COUNTERS)):
            self.counters[ctypes.c_uint32(base + i)] = ctypes.c_uint64(0)
        for family in range(NR_FAMILIES):
            self.sockets[ctypes.c_uint32(slot * NR_FAMILIES + family)] = ctypes.c_uint64(0)
        self.caps[ctypes.c_uint32(slot)] = ctypes.c_uint64(0)
        # Its paths were forgotten when it was released (remove): no map walk on a container's start path.

    def close(self) -> None:
        self.bpf.cleanup()


def _release_compiler_memory() -> None:
    """Give LLVM's freed compile-time heap back to the OS: the tracer lives long, the compile is over."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def tracepoint_has_field(event: str, field: str) -> bool:
    """Whether a tracepoint's format (tracefs) has `field`: its fields differ between kernel versions."""
    for root in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        try:
            with open(f"{root}/events/{event}/format") as f:
                return any(f" {field};" in line for line in f if line.strip().startswith("field:"))
        except OSError:
            continue
    return False


def pid_max() -> int:
    with open("/proc/sys/kernel/pid_max") as f:
        return int(f.read())


class ContainerIdentity(NamedTuple):
    cgroup_id: int
    cgroup_path: Path  # the container's cgroup v2 directory: it disappears with the container
    pidns_dev: int
    pidns_ino: int


def container_identity(pid: int) -> ContainerIdentity:
    """Cgroup v2 id and directory, and PID namespace, of a process, from /proc and cgroupfs."""
    cgroup_path = None
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            hierarchy, _, path = line.rstrip("\n").split(":", 2)
            if hierarchy == "0":
                cgroup_path = path
    if cgroup_path is None:
        raise LookupError("no cgroup v2 membership (is a cgroup2 hierarchy mounted?)")
    if cgroup_path == "/":
        raise LookupError("the container has no cgroup v2 of its own")
    mount = cgroup2_mount()
    if mount is None:
        raise LookupError("no cgroup2 file system is mounted")
    directory = mount / cgroup_path.lstrip("/")
    ns = os.stat(f"/proc/{pid}/ns/pid")
    return ContainerIdentity(os.stat(directory).st_ino, directory, ns.st_dev, ns.st_ino)


def cgroup2_mount() -> Path | None:
    return next(iter(cgroup_mounts(("cgroup2",))), None)


def cgroup_mounts(kinds: tuple[str, ...] = ("cgroup", "cgroup2")) -> list[Path]:
    """Mount points of the cgroup hierarchies of the given file-system types (default: v1 and v2)."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split(" ", 1)[0] in kinds:
                found.append(Path(left.split(" ")[4]))
    return found
