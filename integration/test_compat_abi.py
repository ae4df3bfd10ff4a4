"""32-bit (compat) syscalls while learning: they run as they would with syscage off, they are never recorded
as the native syscall of the same number, and the run says what happened (incomplete, with the i386 names).

i386 syscall 36 is sync; native x86_64 36 is getitimer. integration/programs/int80_sync.c makes it twice
over: from a 64-bit process with `int $0x80`, and as a whole 32-bit process (which also exits through i386
syscall 1, exit, native 1 being write). The 64-bit build also makes an x32 syscall (getpid)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from integration.env import VENV_BIN, Env

SOURCE = Path(__file__).parent / "programs" / "int80_sync.c"
WRAPPER = str(VENV_BIN / "syscage-runtime")
# What the spec's own filter lists in test 2 (Docker's default profile lists these on x86_64).
ALL_X86_ARCHES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]

# program -> (stdout it prints, the compat syscalls it makes by ABI)
PROGRAMS: dict[str, tuple[str, dict[str, set[str]]]] = {
    "int80-sync": ("synced through int 0x80\n", {"i386": {"sync"}, "x32": {"getpid"}}),
    "i386-sync": ("", {"i386": {"sync", "exit"}}),
}


@pytest.fixture(scope="module")
def rootfs(env: Env) -> Path:
    """The busybox rootfs plus the two builds of int80_sync.c."""
    root = env.root / env.name("rootfs-compat")
    shutil.copytree(env.rootfs, root, symlinks=True)
    subprocess.run(["gcc", "-static", "-O2", "-o", str(root / "bin" / "int80-sync"), str(SOURCE)],
                   check=True, capture_output=True)
    subprocess.run(["gcc", "-m32", "-static", "-nostdlib", "-fno-stack-protector", "-O2",
                    "-o", str(root / "bin" / "i386-sync"), str(SOURCE)], check=True, capture_output=True)
    return root


def bundle_for(env: Env, rootfs: Path, program: str, **kwargs: Any) -> Path:
    return env.bundle([f"/bin/{program}"], extra={"root": {"path": str(rootfs), "readonly": True}}, **kwargs)


def run_through_wrapper(env: Env, bundle: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WRAPPER, "--root", str(env.runc_root), "run", "-b", str(bundle), env.name("c")],
                          capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)


def learn_via_runtime_no_filter(env: Env, rootfs: Path, program: str, profile: str) -> subprocess.CompletedProcess[str]:
    """syscage-runtime gives the spec (which has no filter) its allow-all learn filter."""
    bundle = bundle_for(env, rootfs, program, learn=False, seccomp=None,
                        annotations={"io.syscage.mode": "learn", "io.syscage.profile": profile})
    return run_through_wrapper(env, bundle)


def learn_under_own_filter(env: Env, rootfs: Path, program: str, profile: str) -> subprocess.CompletedProcess[str]:
    """Hand-written hooks, the spec's own allow-all filter listing the x86 ABIs: cut-over at its load."""
    own = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ALL_X86_ARCHES}
    return env.run(bundle_for(env, rootfs, program, profile=profile, seccomp=own))


def learn_with_hooks_no_filter(env: Env, rootfs: Path, program: str, profile: str) -> subprocess.CompletedProcess[str]:
    """Hand-written hooks, no filter at all: cut-over at the workload's exec."""
    return env.run(bundle_for(env, rootfs, program, profile=profile, seccomp=None))


PATHS: dict[str, Callable[[Env, Path, str, str], subprocess.CompletedProcess[str]]] = {
    "runtime-no-filter": learn_via_runtime_no_filter,
    "hooks-own-filter": learn_under_own_filter,
    "hooks-exec-cutover": learn_with_hooks_no_filter,
}


@pytest.mark.parametrize("program", PROGRAMS)
def test_programs_run_with_syscage_off(env: Env, rootfs: Path, program: str) -> None:
    result = run_through_wrapper(env, bundle_for(env, rootfs, program, learn=False, seccomp=None))
    assert (result.returncode, result.stdout) == (0, PROGRAMS[program][0]), result.stderr


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("path", PATHS)
def test_compat_syscalls_make_the_run_incomplete_and_are_not_learned_as_native(
        env: Env, rootfs: Path, path: str, program: str) -> None:
    name = env.name(f"compat-{path}")
    result = PATHS[path](env, rootfs, program, name)
    stdout, compat = PROGRAMS[program]
    assert result.returncode == 0, f"rc {result.returncode} (159: killed by SIGSYS) {result.stderr}"
    assert result.stdout == stdout

    profile = env.profile(name)
    (run,) = profile["runs"]
    assert run["cutover"] == ("exec" if path == "hooks-exec-cutover" else "seccomp")
    assert not profile["complete"] and not run["complete"]
    problems = {abi: [p for p in run["problems"] if f" {abi} syscalls" in p] for abi in ("i386", "x32")}
    for abi in ("i386", "x32"):
        if abi not in compat:
            assert not problems[abi] and not run["counters"][f"compat_{abi}"]
            continue
        (problem,) = problems[abi]
        made = run["counters"][f"compat_{abi}"]
        assert made >= len(compat[abi]) and problem.startswith(f"{made} {abi} syscalls")
        assert problem.split(": ", 1)[1].split(";")[0] == ", ".join(sorted(compat[abi]))
    # Not learned, and never as the native syscall of the same number (36 is getitimer; 1 is write, which runc
    # makes itself after the cut-over, so it cannot tell).
    assert not {"getitimer", "sync"} & set(profile["syscalls"])
    if program == "int80-sync":
        assert {"write", "exit_group"} <= set(profile["syscalls"])  # its native syscalls are learned as usual

    shown = subprocess.run([str(VENV_BIN / "syscage"), "show", name], capture_output=True, text=True, check=True,
                           env={**os.environ, "SYSCAGE_CONFIG": str(env.config_path)}).stdout
    assert "INCOMPLETE" in shown and all(p in shown for found in problems.values() for p in found)
