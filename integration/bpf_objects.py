"""BPF programs and maps the kernel holds, read with bpf(2) itself (no bpftool), to check that a tracer
leaves none behind. Other tracers (other test sessions) may run on the same machine at the same time, so
global counts prove nothing: a leak is an object of the tracer's, by id or by name, that outlives it, or a
syscage-named object that no live process holds (a pinned or still-attached program keeps an object alive
with no descriptor; an exited process's descriptors are all closed)."""

from __future__ import annotations

import ctypes
import errno
import os
import time
from pathlib import Path
from typing import NamedTuple

NR_BPF = 321  # x86_64
PROG_GET_NEXT_ID, MAP_GET_NEXT_ID, PROG_GET_FD_BY_ID, MAP_GET_FD_BY_ID, OBJ_GET_INFO_BY_FD = 11, 12, 13, 14, 15
PROG_NAME_OFFSET, MAP_NAME_OFFSET = 64, 24  # of `name` in struct bpf_prog_info / bpf_map_info (uapi)

# What hooks/daemon/tracer.c defines, as the kernel names them (BPF_OBJ_NAME_LEN: 15 characters).
TRACER_MAPS = {"watch", "armed_tab", "armed_overflow", "armed_tgid", "pending_exec", "slot_gen", "seen",
               "counters", "globals", "progs"}
TRACER_PROGS = {"on_sys_enter", "on_mediated", "sched__sched_pr"}  # bcc drops "tracepoint__"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class BpfObject(NamedTuple):
    kind: str  # "prog" or "map"
    id: int
    name: str


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    ret = _libc.syscall(ctypes.c_long(NR_BPF), ctypes.c_int(cmd), attr, ctypes.c_uint(len(attr)))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return int(ret)


def _ids(kind: str) -> list[int]:
    cmd = PROG_GET_NEXT_ID if kind == "prog" else MAP_GET_NEXT_ID
    found, start = [], 0
    while True:
        attr = ctypes.create_string_buffer(16)
        ctypes.c_uint32.from_buffer(attr, 0).value = start
        try:
            _bpf(cmd, attr)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return found
            raise
        start = ctypes.c_uint32.from_buffer(attr, 4).value
        found.append(start)


def _name(kind: str, object_id: int) -> str | None:
    """The object's name, or None if it went away meanwhile."""
    attr = ctypes.create_string_buffer(16)
    ctypes.c_uint32.from_buffer(attr, 0).value = object_id
    try:
        fd = _bpf(PROG_GET_FD_BY_ID if kind == "prog" else MAP_GET_FD_BY_ID, attr)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    try:
        info = ctypes.create_string_buffer(256)
        attr = ctypes.create_string_buffer(16)
        ctypes.c_uint32.from_buffer(attr, 0).value = fd
        ctypes.c_uint32.from_buffer(attr, 4).value = len(info)
        ctypes.c_uint64.from_buffer(attr, 8).value = ctypes.addressof(info)
        _bpf(OBJ_GET_INFO_BY_FD, attr)
        offset = PROG_NAME_OFFSET if kind == "prog" else MAP_NAME_OFFSET
        return info.raw[offset:offset + 16].split(b"\0", 1)[0].decode(errors="replace")
    finally:
        os.close(fd)


def loaded() -> set[BpfObject]:
    """Every BPF program and map the kernel holds right now."""
    objects = set()
    for kind in ("prog", "map"):
        for object_id in _ids(kind):
            name = _name(kind, object_id)
            if name is not None:
                objects.add(BpfObject(kind, object_id, name))
    return objects


def held_by(pid: int) -> set[tuple[str, int]]:
    """(kind, id) of the programs and maps process `pid` holds descriptors of."""
    held = set()
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    try:
        entries = list(fdinfo.iterdir())
    except OSError:
        return held
    for entry in entries:
        try:
            text = entry.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in ("prog_id", "map_id"):
                held.add((key[:-3], int(value)))
    return held


def held_by_anyone() -> set[tuple[str, int]]:
    held: set[tuple[str, int]] = set()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            held |= held_by(int(proc.name))
    return held


def tracer_objects(objects: set[BpfObject]) -> set[BpfObject]:
    return {o for o in objects if o.name in (TRACER_PROGS if o.kind == "prog" else TRACER_MAPS)}


def orphaned_tracer_objects(settle: float = 10.0) -> set[BpfObject]:
    """syscage-named programs and maps no live process holds. The kernel frees an object a little after its
    last descriptor closes: an orphan must stay one for `settle` seconds to count."""
    deadline = time.monotonic() + settle
    while True:
        orphans = {o for o in tracer_objects(loaded()) if (o.kind, o.id) not in held_by_anyone()}
        if not orphans or time.monotonic() > deadline:
            return orphans
        time.sleep(0.2)


def still_loaded(ids: set[tuple[str, int]], settle: float = 10.0) -> set[tuple[str, int]]:
    """Which of `ids` still exist, after up to `settle` seconds for the kernel's deferred free."""
    deadline = time.monotonic() + settle
    while True:
        alive = {(o.kind, o.id) for o in loaded()} & ids
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def memlock_of(pid: int) -> int:
    """Bytes of kernel memory charged to the BPF maps process `pid` holds (fdinfo `memlock`)."""
    total = 0
    fdinfo = Path(f"/proc/{pid}/fdinfo")
    for entry in fdinfo.iterdir():
        try:
            text = entry.read_text()
        except OSError:
            continue
        if "map_id:" in text and "prog_id:" not in text:
            total += sum(int(line.split()[1]) for line in text.splitlines() if line.startswith("memlock:"))
    return total
