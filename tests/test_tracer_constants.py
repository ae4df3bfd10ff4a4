"""tracer.c and tracer_bpf.py share their constants through one source: bpf_cflags."""

from __future__ import annotations

import re

from syscage.hooks.daemon import btf, tracer_bpf
from syscage.hooks.daemon.tracer_bpf import BPF_SOURCE, bpf_cflags

SOURCE = BPF_SOURCE.read_text()


def defines() -> dict[str, str]:
    flags = bpf_cflags(max_slots=8, max_threads=16, pid_table=32768, group_dead=False,
                       offsets=dict.fromkeys(btf.FIELDS, 0))  # the struct offsets come from the kernel's BTF
    return dict(flag.removeprefix("-D").split("=", 1) for flag in flags)


def test_no_constant_is_defined_on_both_sides() -> None:
    in_c = set(re.findall(r"^#define (\w+)", SOURCE, re.MULTILINE))
    assert not in_c & set(defines()), "defined in tracer.c and passed as a cflag: keep one source"


def test_every_shared_constant_has_python_s_value() -> None:
    d = defines()
    assert d["MODE_SECCOMP"] == str(tracer_bpf.MODE_SECCOMP) and d["MODE_EXEC"] == str(tracer_bpf.MODE_EXEC)
    assert [d[f"SET_{n}"] for n in ("ALL", "PRE_EXEC", "I386", "X32")] == [str(tracer_bpf.SET_ALL), str(
        tracer_bpf.SET_PRE_EXEC), str(tracer_bpf.SET_I386), str(tracer_bpf.SET_X32)]
    assert d["NR_SETS"] == str(tracer_bpf.NR_SETS) and d["NR_WORDS"] == str(tracer_bpf.NR_WORDS)
    assert {int(d[f"PATH_ACC_{k.upper()}"]): k for _, k in tracer_bpf.PATH_ACCESS} == dict(tracer_bpf.PATH_ACCESS)
    assert [int(d[f"CNT_{n.upper()}"]) for n in tracer_bpf.COUNTERS] == list(range(len(tracer_bpf.COUNTERS)))
    assert d["PROG_MEDIATED"] == str(tracer_bpf.PROG_MEDIATED)


def test_every_mediated_syscall_reaches_the_tail_called_program() -> None:
    # on_sys_enter tail-calls on_mediated only for the syscalls is_mediated_nr names: one left out there
    # would never have its path or socket recorded.
    body = re.search(r"is_mediated_nr\(long nr\)\s*\{(.*?)\n\}", SOURCE, re.DOTALL)
    assert body, "is_mediated_nr not found in tracer.c"
    named = set(re.findall(r"\bSC_(\w+)", body.group(1)))
    if "is_socket_nr(nr)" in body.group(1):
        named |= {"SOCKET", "SOCKETPAIR"}
    assert named == {name.upper() for name in tracer_bpf.MEDIATED}


def test_every_upper_case_name_the_program_uses_is_defined_somewhere() -> None:
    # Names bcc, the kernel headers or tracer.c itself provide; everything else must come from bpf_cflags.
    own = set(re.findall(r"^#define (\w+)", SOURCE, re.MULTILINE)) | set(re.findall(r"#ifn?def (\w+)", SOURCE))
    known = {"BPF_HASH", "BPF_ARRAY", "BPF_PERCPU_ARRAY", "BPF_PROG_ARRAY", "TRACEPOINT_PROBE", "PT_REGS_PARM3",
             "HAVE_GROUP_DEAD"}
    code = re.sub(r"//[^\n]*|\"[^\"\n]*\"", "", SOURCE)
    used = set(re.findall(r"\b([A-Z][A-Z0-9_]{2,})\b", code))
    assert used - own - known - set(defines()) == set()
