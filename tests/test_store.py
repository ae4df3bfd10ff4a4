from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from syscage.errors import SyscageError
from syscage.profile import Observation
from syscage.store import ProfileStore, write_atomically

FLOOR = {"exit", "exit_group", "restart_syscall", "rt_sigreturn"}  # seccomp.always_allow, by default


def _obs(cid: str, syscalls: list[str]) -> Observation:
    return Observation(container_id=cid, started="t", stopped="t", cutover="seccomp", syscalls=syscalls)


def test_record_run_writes_profile_and_seccomp(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path, 1)
    store.record_run("web", _obs("c1", ["read", "write"]))
    directory = tmp_path / "profiles" / "web"
    profile = json.loads((directory / "profile.json").read_text())
    seccomp = json.loads((directory / "seccomp.json").read_text())
    assert set(profile["syscalls"]) == {"read", "write"} | FLOOR
    assert profile["syscalls"]["exit_group"]["sources"] == ["floor"]
    assert seccomp["syscalls"][0]["names"] == sorted({"read", "write"} | FLOOR)
    assert store.names() == ["web"]
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


def test_hostile_names_never_touch_the_disk(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "store", 1)
    for name in ("../../etc", "/abs", "a\0b", "x" * 10_000):
        with pytest.raises(SyscageError):
            store.record_run(name, _obs("c", ["read"]))
    assert not (tmp_path / "etc").exists()
    assert list(tmp_path.rglob("*.json")) == []


def test_corrupt_profile_is_reported_and_not_overwritten(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path, 1)
    store.record_run("web", _obs("c1", ["read"]))
    path = tmp_path / "profiles" / "web" / "profile.json"
    path.write_text('{"kind": "syscage-profile", "trunc')
    with pytest.raises(SyscageError, match="corrupt"):
        store.record_run("web", _obs("c2", ["write"]))
    assert path.read_text() == '{"kind": "syscage-profile", "trunc'  # evidence kept, not clobbered


def test_failed_write_leaves_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.json"
    target.write_text("old")

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        write_atomically(target, b"new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def _learner(root: str, i: int) -> None:
    store = ProfileStore(Path(root), 1)
    for j in range(10):
        store.record_run("shared", _obs(f"c{i}-{j}", ["read", f"{['mkdir', 'sync', 'chdir', 'uname'][i]}"]))


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    procs = [multiprocessing.Process(target=_learner, args=(str(tmp_path), i)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    profile = ProfileStore(tmp_path, 1).read("shared")
    assert profile is not None
    assert len(profile["runs"]) == 40
    assert set(profile["syscalls"]) == {"read", "mkdir", "sync", "chdir", "uname"} | FLOOR
    assert profile["syscalls"]["read"]["runs"] == 40


def test_enforce_uses_the_stored_filter_only_when_it_is_the_profiles_own(tmp_path: Path) -> None:
    from syscage.config import Config
    from syscage.shim.prepare import enforceable_seccomp

    ProfileStore(tmp_path, 1).record_run("web", _obs("c1", ["read", "write"]))
    stored = tmp_path / "profiles" / "web" / "seccomp.json"
    config = Config(store=tmp_path, seccomp_errno=1)
    assert enforceable_seccomp("web", config) == json.loads(stored.read_text())
    # A seccomp.json out of step with profile.json (edited, or left by a crash) is not used: re-rendered.
    tampered = json.loads(stored.read_text())
    tampered["syscalls"][0]["names"].append("ptrace")
    stored.write_text(json.dumps(tampered))
    assert enforceable_seccomp("web", config)["syscalls"][0]["names"] == sorted({"read", "write"} | FLOOR)
    # The errno changed in the config since the profile was written: rendered with the new one.
    assert enforceable_seccomp("web", config._replace(seccomp_errno=38))["defaultErrnoRet"] == 38


def test_reading_a_profile_imports_no_merge_or_libseccomp_code(tmp_path: Path) -> None:
    """Enforce reads profiles on the container's start path: the store must not pull in its writers."""
    import subprocess
    import sys

    ProfileStore(tmp_path, 1).record_run("web", _obs("c1", ["read"]))
    code = ("import sys; from syscage.store import ProfileStore; from syscage.seccomp import render; "
            f"p = ProfileStore(__import__('pathlib').Path({str(tmp_path)!r}), 1).read('web'); "
            "render(list(p['syscalls']), 1, p['arch']); "
            "print(sorted(m for m in ('pyseccomp', 'syscage.profile', 'tempfile', 'dataclasses') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_never_allow_withholds_a_needed_syscall_and_keeps_the_run_complete(tmp_path: Path) -> None:
    ProfileStore(tmp_path, 1).record_run("web", _obs("c0", ["read", "keyctl"]))  # before the config named it
    store = ProfileStore(tmp_path, 1, never_allow=("keyctl", "bpf"))
    store.record_run("web", _obs("c1", ["read", "bpf", "write"]))
    profile = store.read("web")
    assert profile is not None and profile["complete"]
    assert {"bpf", "keyctl"}.isdisjoint(profile["syscalls"])
    assert profile["runs"][-1]["withheld"] == ["bpf"] and profile["runs"][-1]["complete"]
    assert "withheld" not in profile["runs"][0]
    names = json.loads((tmp_path / "profiles" / "web" / "seccomp.json").read_text())["syscalls"][0]["names"]
    assert {"bpf", "keyctl"}.isdisjoint(names) and {"read", "write"} <= set(names)
