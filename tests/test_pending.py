"""Pending runs: the durable trace of a watched container, and what makes one lost."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from syscage.config import Config
from syscage.errors import SyscageError
from syscage.liveness import INSTANCE_FILE, LOCK_FILE, live_instance
from syscage.profile import Observation
from syscage.shim.prepare import Unenforceable, enforceable_seccomp
from syscage.store import ProfileStore


def _obs(cid: str, syscalls: list[str], problems: list[str] | None = None) -> Observation:
    return Observation(container_id=cid, started="t", stopped="t", cutover="seccomp", syscalls=syscalls,
                       problems=problems or [])


def _pending(pid: str, instance: str, cid: str = "c1") -> dict[str, object]:
    return {"id": pid, "instance": instance, "container_id": cid, "key": f"nonce:{cid}", "started": "t0"}


def test_a_pending_run_is_lost_unless_its_tracer_is_the_live_one(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path, 1)
    store.add_pending("web", _pending("i1-0-1", "i1"))
    assert store.names() == ["web"]  # a first learning run shows before anything is recorded
    assert store.lost_pending("web", "i1") == []  # learning now
    assert [p["id"] for p in store.lost_pending("web", "i2")] == ["i1-0-1"]  # another tracer is live
    assert [p["id"] for p in store.lost_pending("web", None)] == ["i1-0-1"]  # no tracer at all


def test_recording_the_run_removes_its_pending_record_and_names_it(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path, 1)
    store.add_pending("web", _pending("i1-0-1", "i1"))
    profile = store.record_run("web", _obs("c1", ["read"]), pending="i1-0-1")
    assert profile is not None and profile["runs"][-1]["pending"] == "i1-0-1"
    assert store.pending("web") == [] and not list((tmp_path / "profiles" / "web" / "pending").iterdir())


def test_settling_a_lost_run_is_done_once(tmp_path: Path) -> None:
    """A crash between writing profile.json and removing the pending record: the run is there already."""
    store = ProfileStore(tmp_path, 1)
    store.add_pending("web", _pending("i1-0-1", "i1"))
    profile = store.read("web")
    assert profile is None
    store.record_run("web", _obs("c1", ["read"]))  # an unrelated run
    store.record_run("web", _obs("c1", ["read"], ["lost"]), pending="i1-0-1", settling=True)
    assert store.record_run("web", _obs("c1", [], ["lost"]), pending="i1-0-1", settling=True) is None  # gone
    store.add_pending("web", _pending("i1-0-1", "i1"))  # as if its removal had not reached the disk
    assert store.record_run("web", _obs("c1", [], ["lost"]), pending="i1-0-1", settling=True) is None
    assert store.pending("web") == []
    assert store.read("web")["runs_total"] == 2  # type: ignore[index]


def test_a_failed_recording_is_lost_even_while_its_tracer_lives(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path, 1)
    store.add_pending("web", _pending("i1-0-1", "i1"))
    store.fail_pending("web", "i1-0-1")
    (lost,) = store.lost_pending("web", "i1")
    assert lost["failed"] and lost["id"] == "i1-0-1" and lost["container_id"] == "c1"


def test_accept_drops_lost_pending_runs_and_keeps_live_ones(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path, 1)
    store.record_run("web", _obs("c0", ["read"]))
    store.add_pending("web", _pending("i1-0-1", "i1", "c1"))
    store.add_pending("web", _pending("i2-0-1", "i2", "c2"))
    profile = store.accept("web", "i2")
    assert [p["id"] for p in store.pending("web")] == ["i2-0-1"]
    assert "lost run of c1" in profile["accepted"][-1]["reasons"][0]


def test_pending_ids_cannot_name_paths(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path, 1)
    for bad in ("../x", "", "a/b", "A"):
        with pytest.raises(SyscageError):
            store.add_pending("web", _pending(bad, "i1"))


def test_a_new_profile_directory_is_fsynced_into_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    ProfileStore(tmp_path, 1).record_run("web", _obs("c1", ["read"]))
    assert str(tmp_path / "profiles") in synced  # the entry of profiles/web itself is durable


def _config(tmp_path: Path) -> Config:
    return Config(store=tmp_path / "store", run_dir=tmp_path / "run", log_file=tmp_path / "log")


def _hold_tracer_lock(run_dir: Path, instance: str) -> int:
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    (run_dir / INSTANCE_FILE).write_text(instance + "\n")
    return fd


def test_enforce_refuses_a_profile_with_a_lost_run_but_not_one_learning_now(tmp_path: Path) -> None:
    config = _config(tmp_path)
    store = ProfileStore(config.store, config.seccomp_errno)
    store.record_run("web", _obs("c0", ["read", "write", "exit_group"]))
    store.add_pending("web", _pending("i1-0-1", "i1"))
    assert live_instance(config.run_dir) is None
    with pytest.raises(Unenforceable, match="lost"):
        enforceable_seccomp("web", config)  # its tracer is gone: the run will never be recorded
    fd = _hold_tracer_lock(config.run_dir, "i1")
    try:
        assert live_instance(config.run_dir) == "i1"
        assert enforceable_seccomp("web", config)["defaultAction"] == "SCMP_ACT_ERRNO"  # learning now: fine
        (config.run_dir / INSTANCE_FILE).write_text("i9\n")  # another tracer runs now
        with pytest.raises(Unenforceable, match="lost"):
            enforceable_seccomp("web", config)
    finally:
        os.close(fd)
    assert json.loads((config.store / "profiles" / "web" / "profile.json").read_text())["complete"]


def test_a_record_with_no_tracer_settles_its_own_lost_pending_run_only(tmp_path: Path) -> None:
    from syscage.hooks.client import record_untraced

    config = _config(tmp_path)
    store = ProfileStore(config.store, config.seccomp_errno)
    store.add_pending("web", _pending("i1-0-1", "i1", "c1"))
    store.add_pending("web", _pending("i1-1-2", "i1", "c2"))
    record_untraced(config, "c1", "web", "learn", "", "the tracer was not running", "runtime", "nonce:other")
    assert len(store.pending("web")) == 2  # another container of that id: not its pending run
    reply = record_untraced(config, "c1", "web", "learn", "", "the tracer was not running", "runtime", "nonce:c1")
    assert reply["complete"] is False
    assert [p["container_id"] for p in store.pending("web")] == ["c2"]
    runs = store.read("web")["runs"]  # type: ignore[index]
    assert runs[-1]["pending"] == "i1-0-1" and runs[-1]["started"] == "t0"


def test_list_show_and_accept_tell_lost_runs_from_learners(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from syscage.cli import main

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[paths]\nstore = "{tmp_path}/store"\nrun_dir = "{tmp_path}/run"\nlog_file = "{tmp_path}/log"\n')
    monkeypatch.setenv("SYSCAGE_CONFIG", str(cfg))
    store = ProfileStore(tmp_path / "store", 1)
    store.record_run("web", _obs("c0", ["read"]))
    store.add_pending("web", _pending("i1-0-1", "i1", "c1"))
    store.add_pending("new", _pending("i2-0-1", "i2", "c2"))  # a first run: nothing recorded yet
    fd = _hold_tracer_lock(tmp_path / "run", "i2")
    try:
        assert main(["list", "--json"]) == 0
        rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
        assert rows["web"]["complete"] is False and rows["web"]["lost_runs"] == 1
        assert rows["new"]["learning_now"] == 1 and rows["new"]["lost_runs"] == 0
        assert main(["show", "web"]) == 0
        shown = capsys.readouterr().out
        assert "INCOMPLETE" in shown and "run of c1" in shown and "instance i1" in shown
        assert main(["show", "new"]) == 0
        assert "learning now: c2" in capsys.readouterr().out
        assert main(["accept", "web"]) == 0
        capsys.readouterr()
        assert main(["list", "--json"]) == 0
        rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
        assert rows["web"]["complete"] is True and rows["web"]["lost_runs"] == 0
    finally:
        os.close(fd)


def test_a_run_the_store_had_no_room_for_is_noted_lost_then_settled(tmp_path: Path) -> None:
    """A full store: the run is noted in the run directory, counts as lost (the profile is incomplete), and a
    later write settles it into the profile once, keyed, so that a late record of it is known."""
    store = ProfileStore(tmp_path / "store", 1, notes=tmp_path / "run" / "unrecorded")
    store.record_run("web", _obs("c0", ["read"]))
    note = store.note_unrecorded("web", {"container_id": "c1", "key": "nonce:c1", "started": "t0",
                                         "error": "[Errno 28] No space left on device"})
    assert note is not None
    (lost,) = store.lost_pending("web", "i1")  # lost whichever tracer is live
    assert lost["noted"] and "No space left" in str(lost.get("error"))
    assert not store.run_recorded("web", "c1", "nonce:c1")
    settled = store.record_run("web", _obs("c1", [], ["never recorded"]), pending=note, settling=True,
                               key="nonce:c1")
    assert settled is not None and store.pending("web") == []
    assert store.run_recorded("web", "c1", "nonce:c1") and not store.run_recorded("web", "c1", "nonce:other")
    assert store.record_run("web", _obs("c1", []), pending=note, settling=True) is None  # once only
