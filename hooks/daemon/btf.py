"""Struct member offsets from the running kernel's BTF (/sys/kernel/btf/vmlinux), for tracer.c.

tracer.c includes no kernel headers (parsing them is most of a compile, and minutes under emulation): the few
kernel struct fields it reads to resolve a directory to its path are passed as -D offsets read here. A kernel
without BTF, or one whose structs lack a field, gets no offsets: the tracer then counts relative paths as
unresolved instead of resolving them.
"""

from __future__ import annotations

import struct
from pathlib import Path

VMLINUX = Path("/sys/kernel/btf/vmlinux")
BTF_MAGIC = 0xEB9F
KIND_STRUCT, KIND_UNION = 4, 5
# Bytes that follow a btf_type, per kind: fixed, and per vlen entry.
_EXTRA = {1: (4, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 13: (0, 8), 14: (4, 0), 15: (0, 12),
          17: (4, 0), 19: (0, 12)}
_MODIFIERS = (8, 9, 10, 11, 18)  # typedef, volatile, const, restrict, type_tag: follow to the type

# The fields the dentry walk reads: name -> (struct, member path). Offsets are in bytes.
FIELDS = {
    "OFF_TASK_FS": ("task_struct", "fs"),
    "OFF_TASK_FILES": ("task_struct", "files"),
    "OFF_FS_ROOT": ("fs_struct", "root"),
    "OFF_FS_PWD": ("fs_struct", "pwd"),
    "OFF_PATH_MNT": ("path", "mnt"),
    "OFF_PATH_DENTRY": ("path", "dentry"),
    "OFF_FILES_FDT": ("files_struct", "fdt"),
    "OFF_FDT_MAX_FDS": ("fdtable", "max_fds"),
    "OFF_FDT_FD": ("fdtable", "fd"),
    "OFF_FILE_PATH": ("file", "f_path"),
    "OFF_DENTRY_PARENT": ("dentry", "d_parent"),
    "OFF_DENTRY_NAME": ("dentry", "d_name"),
    "OFF_QSTR_NAME": ("qstr", "name"),
    "OFF_VFSMOUNT_ROOT": ("vfsmount", "mnt_root"),
    "OFF_MOUNT_PARENT": ("mount", "mnt_parent"),
    "OFF_MOUNT_MOUNTPOINT": ("mount", "mnt_mountpoint"),
    "OFF_MOUNT_MNT": ("mount", "mnt"),
}


class Btf:
    """The struct and union types of one BTF blob (enough to find member offsets)."""

    def __init__(self, data: bytes) -> None:
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("<HBBIIIII", data)
        if magic != BTF_MAGIC:
            raise ValueError("not BTF")
        self.strings = data[hdr_len + str_off:hdr_len + str_off + str_len]
        self.types: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)]  # id -> (kind, name_off, type, data offset)
        self.structs: dict[str, int] = {}
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        while pos < end:
            name_off, info, size_type = struct.unpack_from("<III", data, pos)
            kind, vlen = info >> 24 & 0x1F, info & 0xFFFF
            self.types.append((kind, name_off, size_type, pos))
            if kind in (KIND_STRUCT, KIND_UNION) and vlen and name_off:
                self.structs.setdefault(self.name(name_off), len(self.types) - 1)
            fixed, each = _EXTRA.get(kind, (0, 0))
            pos += 12 + fixed + each * vlen
        self.data = data

    def name(self, off: int) -> str:
        return self.strings[off:self.strings.index(b"\0", off)].decode()

    def member_offset(self, type_id: int, member: str) -> int | None:
        """Byte offset of `member` in a struct/union, looking into anonymous members too."""
        _kind, _name, _size, pos = self.types[type_id]
        info = struct.unpack_from("<I", self.data, pos + 4)[0]
        bitfields = info >> 31
        for i in range(info & 0xFFFF):
            name_off, mtype, moff = struct.unpack_from("<III", self.data, pos + 12 + 12 * i)
            bits = moff & 0xFFFFFF if bitfields else moff
            if name_off and self.name(name_off) == member:
                return bits // 8
            if not name_off:
                inner = self.resolve(mtype)
                if self.types[inner][0] in (KIND_STRUCT, KIND_UNION):
                    found = self.member_offset(inner, member)
                    if found is not None:
                        return bits // 8 + found
        return None

    def resolve(self, type_id: int) -> int:
        while self.types[type_id][0] in _MODIFIERS:
            type_id = self.types[type_id][2]
        return type_id


def walk_offsets(path: Path = VMLINUX) -> dict[str, int]:
    """Every FIELDS offset, or {} when the kernel has no BTF or lacks one of them."""
    try:
        btf = Btf(path.read_bytes())
    except (OSError, ValueError, struct.error):
        return {}
    out = {}
    for define, (struct_name, member) in FIELDS.items():
        type_id = btf.structs.get(struct_name)
        offset = btf.member_offset(type_id, member) if type_id else None
        if offset is None:
            return {}
        out[define] = offset
    return out
