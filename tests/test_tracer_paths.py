"""How the tracer turns a recorded name into the container path AppArmor checks, and the kernel struct offsets
its dentry walk reads from BTF."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from syscage.hooks.daemon import btf
from syscage.hooks.daemon.tracer_bpf import container_path


@pytest.mark.parametrize(("raw", "dirlen", "expected"), [
    (b"/etc/hostname", 0, b"/etc/hostname"),
    (b"/etc/hostname", 4, b"/etc/hostname"),  # `cd /etc && cat hostname`
    (b"/hostname", 0, b"/hostname"),  # relative to the root
    (b"/etc/./x//y", 4, b"/etc/x/y"),
    (b"/a/b/../c", 4, b"/a/c"),  # ".." of the resolved directory: exact
    (b"/a/b/c/..", 2, None),  # ".." after a given component: could follow a symlink
    (b"/usr/../etc/passwd", 0, None),
    (b"/../x", 0, b"/x"),  # above the root stays at the root
])
def test_a_name_becomes_the_container_path_or_none(raw: bytes, dirlen: int, expected: bytes | None) -> None:
    assert container_path(raw, dirlen) == expected


def _blob(types: list[bytes], strings: bytes) -> bytes:
    body = b"".join(types)
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(body), len(body), len(strings)) + body + strings


def test_offsets_come_from_members_and_anonymous_members(tmp_path: Path) -> None:
    strings = b"\0int\0outer\0a\0b\0inner\0"
    int_t = struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", 32)  # id 1
    inner = struct.pack("<III", 0, 4 << 24 | 1, 8) + struct.pack("<III", strings.index(b"b\0"), 1, 32)  # id 2
    outer = struct.pack("<III", strings.index(b"outer"), 4 << 24 | 2, 16) + \
        struct.pack("<III", strings.index(b"a\0"), 1, 0) + struct.pack("<III", 0, 2, 64)  # id 3
    parsed = btf.Btf(_blob([int_t, inner, outer], strings))
    assert parsed.member_offset(parsed.structs["outer"], "a") == 0
    assert parsed.member_offset(parsed.structs["outer"], "b") == 12  # 8 (anonymous) + 4
    assert parsed.member_offset(parsed.structs["outer"], "c") is None


def test_no_btf_means_no_offsets(tmp_path: Path) -> None:
    assert btf.walk_offsets(tmp_path / "missing") == {}
    (tmp_path / "junk").write_bytes(b"\0" * 64)
    assert btf.walk_offsets(tmp_path / "junk") == {}


@pytest.mark.skipif(not btf.VMLINUX.exists(), reason="this kernel exposes no BTF")
def test_the_running_kernel_has_every_field_the_walk_reads() -> None:
    offsets = btf.walk_offsets()
    assert set(offsets) == set(btf.FIELDS)
    assert offsets["OFF_PATH_DENTRY"] == 8 and offsets["OFF_QSTR_NAME"] == 8  # stable layouts, as a check
