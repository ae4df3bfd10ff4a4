"""Tracer.handle without BPF: which record gets which watch, and the pending runs behind them.

A fake recorder stands in for the BPF maps (each slot reports the syscall numbers set for it) and a
directory per container stands in for its cgroup (its inode is the cgroup id, as in cgroupfs)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from syscage.config import Config
from syscage.hooks.daemon.tracer import Tracer
from syscage.hooks.daemon.tracer_bpf import ContainerIdentity
from syscage.store import ProfileStore

READ, WRITE, MKDIR, UNAME = 0, 1, 83, 63  # x86_64

FLOOR = {"exit", "exit_group", "restart_syscall", "rt_sigreturn"}  # seccomp.always_allow, by default


class Report(NamedTuple):
    syscalls: list[int]
    pre_exec: list[int]
    counters: dict[str, int]
    compat: dict[str, list[int]] = {}  # noqa: RUF012 (a NamedTuple default, never mutated)
    files: dict[bytes, list[str]] = {}  # noqa: RUF012
    sockets: list[tuple[int, int]] = []  # noqa: RUF012
    capabilities: list[int] = []  # noqa: RUF012
    capabilities_traced: bool = False
    arguments: dict[str, tuple[list[int], bool]] = {}  # noqa: RUF012 (a NamedTuple default, never mutated)


class FakeRecorder:
    def __init__(self, slots: int = 8) -> None:
        self.free = list(range(slots))
        self.cgroups: dict[int, int] = {}
        self.seen: dict[int, list[int]] = {}

    def add(self, cgroup_id: int, pidns_dev: int, pidns_ino: int, exec_mode: bool) -> int:
        if cgroup_id in self.cgroups:
            raise KeyError("cgroup already watched")
        if not self.free:
            raise IndexError("full")
        slot = self.free.pop(0)
        self.cgroups[cgroup_id] = slot
        self.seen[slot] = []
        return slot

    def collect(self, slot: int) -> Report:
        return Report(sorted(self.seen[slot]), [], {"cutover_seccomp": 1})

    def remove(self, cgroup_id: int, slot: int) -> None:
        del self.cgroups[cgroup_id]
        self.free.append(slot)

    def close(self) -> None:
        pass


class Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def bind(self, **_: Any) -> Log:
        return self

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.events.append((level, event, fields))


class Host:
    """Containers as pids, each with a directory for a cgroup."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cgroups: dict[int, Path] = {}

    def start(self, pid: int) -> Path:
        path = self.root / f"cg{pid}"
        path.mkdir()
        self.cgroups[pid] = path
        return path

    def identify(self, pid: int) -> ContainerIdentity:
        path = self.cgroups[pid]
        return ContainerIdentity(os.stat(path).st_ino, path, 1, 2)


@pytest.fixture
def host(tmp_path: Path) -> Host:
    (tmp_path / "cgroups").mkdir()
    return Host(tmp_path / "cgroups")


def tracer(tmp_path: Path, host: Host, instance: str = "i1", **config: Any) -> Tracer:
    cfg = Config(store=tmp_path / "store", run_dir=tmp_path / "run", log_file=tmp_path / "log", **config)
    return Tracer(cfg, Log(), 0, instance=instance, recorder=FakeRecorder(), identify=host.identify)


def watch(t: Tracer, cid: str, pid: int, profile: str, key: str) -> dict[str, Any]:
    return t.handle({"op": "watch", "container_id": cid, "pid": pid, "profile": profile, "key": key})


def record(t: Tracer, cid: str, profile: str, key: str) -> dict[str, Any]:
    return t.handle({"op": "record", "container_id": cid, "profile": profile, "key": key})


def sees(t: Tracer, cid: str, *numbers: int) -> None:
    t.recorder.seen[t.watched[cid].slot].extend(numbers)  # type: ignore[attr-defined]


def profile(tmp_path: Path, name: str) -> dict[str, Any]:
    doc = ProfileStore(tmp_path / "store", 1).read(name)
    assert doc is not None
    return doc


def pending(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    return ProfileStore(tmp_path / "store", 1).pending(name)


def test_a_reused_id_never_takes_the_earlier_containers_run(tmp_path: Path, host: Host) -> None:
    """The earlier container of the id was deleted without syscage: its watch is saved into its own profile
    when the id comes back, and the new container's record gets the new container's syscalls only."""
    t = tracer(tmp_path, host)
    host.start(1)
    assert watch(t, "same", 1, "reuse-a", "nonce:a")["ok"]
    sees(t, "same", READ)
    host.cgroups[1].rmdir()  # plain `runc delete`: the cgroup goes, no record comes
    host.start(2)
    assert watch(t, "same", 2, "reuse-b", "nonce:b")["ok"]
    a = profile(tmp_path, "reuse-a")
    assert not a["complete"] and a["runs"][0]["container_id"] == "same" and "read" in a["syscalls"]
    assert "another container now uses the id" in a["runs"][0]["problems"][0]
    assert pending(tmp_path, "reuse-a") == []
    sees(t, "same", MKDIR, UNAME)
    reply = record(t, "same", "reuse-b", "nonce:b")
    assert reply["ok"] and reply["complete"]
    b = profile(tmp_path, "reuse-b")
    assert b["complete"] and set(b["syscalls"]) == {"mkdir", "uname"} | FLOOR and b["runs_total"] == 1
    assert pending(tmp_path, "reuse-b") == []


def test_a_record_naming_another_key_is_untraced_and_leaves_the_watch(tmp_path: Path, host: Host) -> None:
    t = tracer(tmp_path, host)
    host.start(1)
    assert watch(t, "same", 1, "live", "nonce:a")["ok"]
    sees(t, "same", READ)
    reply = record(t, "same", "other", "nonce:b")  # another root's container of that id, never watched
    assert reply["ok"] and not reply["complete"]
    other = profile(tmp_path, "other")
    assert set(other["syscalls"]) <= FLOOR and "another container's" in other["runs"][0]["problems"][0]
    assert "same" in t.watched  # the live container keeps its watch
    assert record(t, "same", "live", "")["complete"] is False  # no key: never handed a watch
    reply = record(t, "same", "live", "nonce:a")
    assert reply["complete"] and "read" in profile(tmp_path, "live")["syscalls"]


def test_a_mismatched_record_saves_a_stale_watch_into_its_own_profile(tmp_path: Path, host: Host) -> None:
    t = tracer(tmp_path, host)
    host.start(1)
    assert watch(t, "same", 1, "reuse-a", "nonce:a")["ok"]
    sees(t, "same", READ)
    host.cgroups[1].rmdir()
    assert not record(t, "same", "reuse-b", "nonce:b")["complete"]  # its prestart never reached the tracer
    assert "read" not in profile(tmp_path, "reuse-b")["syscalls"]
    assert "read" in profile(tmp_path, "reuse-a")["syscalls"] and not profile(tmp_path, "reuse-a")["complete"]
    assert t.watched == {}


def test_the_same_id_alive_twice_is_refused(tmp_path: Path, host: Host) -> None:
    t = tracer(tmp_path, host)
    host.start(1)
    host.start(2)
    assert watch(t, "same", 1, "a", "nonce:a")["ok"]
    assert watch(t, "same", 1, "a", "nonce:a")["ok"]  # the same container's hook again: idempotent
    reply = watch(t, "same", 2, "b", "nonce:b")
    assert not reply["ok"] and "already being learned" in reply["error"]


def test_a_failed_create_releases_its_watch_without_a_run(tmp_path: Path, host: Host) -> None:
    t = tracer(tmp_path, host)
    host.start(1)
    assert watch(t, "c", 1, "web", "nonce:a")["ok"]
    assert len(pending(tmp_path, "web")) == 1
    assert t.handle({"op": "release", "container_id": "c", "profile": "web", "key": "nonce:x"})["released"] is False
    assert t.handle({"op": "release", "container_id": "c", "profile": "web", "key": "nonce:a"})["released"]
    assert t.watched == {} and pending(tmp_path, "web") == []
    assert ProfileStore(tmp_path / "store", 1).read("web") is None  # no run recorded


def test_a_watch_leaves_a_pending_run_until_its_record(tmp_path: Path, host: Host) -> None:
    t = tracer(tmp_path, host)
    host.start(1)
    assert watch(t, "c", 1, "web", "nonce:a")["ok"]
    (p,) = pending(tmp_path, "web")
    assert p["instance"] == "i1" and p["container_id"] == "c" and p["key"] == "nonce:a"
    store = ProfileStore(tmp_path / "store", 1)
    assert store.lost_pending("web", "i1") == [] and store.lost_pending("web", None)
    sees(t, "c", READ)
    assert record(t, "c", "web", "nonce:a")["complete"]
    assert pending(tmp_path, "web") == [] and profile(tmp_path, "web")["runs"][0]["pending"] == p["id"]


def test_stop_saves_every_watched_container_as_incomplete(tmp_path: Path, host: Host) -> None:
    t = tracer(tmp_path, host)
    host.start(1)
    assert watch(t, "c", 1, "web", "nonce:a")["ok"]
    sees(t, "c", WRITE)
    t.stop()
    web = profile(tmp_path, "web")
    assert not web["complete"] and "write" in web["syscalls"] and "tracer stopped" in web["runs"][0]["problems"][0]
    assert pending(tmp_path, "web") == []
    assert t.handle({"op": "status"}).get("retry")  # nothing more is taken


def test_a_new_tracer_settles_the_runs_a_crashed_one_left(tmp_path: Path, host: Host) -> None:
    crashed = tracer(tmp_path, host, "i1")
    host.start(1)
    assert watch(crashed, "c", 1, "web", "nonce:a")["ok"]
    fresh = tracer(tmp_path, host, "i2")
    assert fresh.settle_lost() == 1
    web = profile(tmp_path, "web")
    assert not web["complete"] and web["runs"][0]["container_id"] == "c"
    assert "instance i1" in web["runs"][0]["problems"][0] and pending(tmp_path, "web") == []
    assert fresh.settle_lost() == 0


def test_a_failed_recording_leaves_a_lost_pending_run(tmp_path: Path, host: Host,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    t = tracer(tmp_path, host)
    host.start(1)
    assert watch(t, "c", 1, "web", "nonce:a")["ok"]

    def full(self: ProfileStore, name: str, doc: dict[str, Any]) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ProfileStore, "_write", full)
    reply = record(t, "c", "web", "nonce:a")
    assert not reply["ok"] and "No space left" in reply["error"]
    (lost,) = ProfileStore(tmp_path / "store", 1).lost_pending("web", "i1")  # lost although its tracer lives
    assert lost["failed"]


def test_a_watch_that_cannot_leave_its_pending_run_is_undone(tmp_path: Path, host: Host) -> None:
    (tmp_path / "store").write_text("not a directory")
    t = tracer(tmp_path, host)
    host.start(1)
    reply = watch(t, "c", 1, "web", "nonce:a")
    assert not reply["ok"] and "pending run" in reply["error"]
    assert t.watched == {} and t.recorder.cgroups == {}  # type: ignore[attr-defined]


def test_one_namespace_cannot_take_every_slot(tmp_path: Path, host: Host) -> None:
    t = tracer(tmp_path, host, max_containers=8, max_containers_per_namespace=2)
    for pid in range(1, 6):
        host.start(pid)
    assert watch(t, "a1", 1, "k8s.team-a.web", "nonce:1")["ok"]
    assert watch(t, "a2", 2, "k8s.team-a.db", "nonce:2")["ok"]
    refused = watch(t, "a3", 3, "k8s.team-a.web", "nonce:3")
    assert not refused["ok"] and "tracer.max_containers_per_namespace" in refused["error"]
    assert watch(t, "b1", 4, "k8s.team-b.web", "nonce:4")["ok"]
    assert watch(t, "x", 5, "plain", "nonce:5")["ok"]
    status = t.handle({"op": "status"})
    assert status["refused"] == 1 and status["refused_by_namespace"] == {"team-a": 1}


def test_the_default_namespace_share_is_a_quarter() -> None:
    assert Config().namespace_share == 64
    assert Config(max_containers=2).namespace_share == 1
    assert Config(max_containers_per_namespace=5).namespace_share == 5


def test_the_namespace_share_is_read_from_the_config() -> None:
    from syscage.config import config_from_mapping

    assert config_from_mapping({"tracer": {"max_containers_per_namespace": 3}}).namespace_share == 3


def test_a_record_after_a_restart_settles_the_lost_run_once(tmp_path: Path, host: Host) -> None:
    crashed = tracer(tmp_path, host, "i1")
    host.start(1)
    assert watch(crashed, "c", 1, "web", "nonce:a")["ok"]
    fresh = tracer(tmp_path, host, "i2")
    reply = record(fresh, "c", "web", "nonce:a")  # before the fresh tracer got round to settling it
    assert reply["ok"] and not reply["complete"]
    assert pending(tmp_path, "web") == [] and fresh.settle_lost() == 0
    assert profile(tmp_path, "web")["runs_total"] == 1


# -- requests the tracer refuses, and its janitor -------------------------------------------------------------

@pytest.mark.parametrize(("doc", "error"), [
    ({"op": "watch", "container_id": "c", "profile": "web"}, "watch needs container_id, pid and profile"),
    ({"op": "watch", "container_id": "c", "pid": True, "profile": "web"}, "watch needs"),
    ({"op": "watch", "container_id": "c", "pid": "1", "profile": "web"}, "watch needs"),
    ({"op": "watch", "container_id": 5, "pid": 1, "profile": "web"}, "watch needs"),
    ({"op": "watch", "container_id": "c", "pid": 1, "profile": "web", "key": 3}, "watch needs"),
    ({"op": "record", "container_id": "c"}, "record needs container_id and profile"),
    ({"op": "release", "profile": "web"}, "release needs container_id"),
    ({"op": "explode"}, "unknown op 'explode'"),
    ({}, "unknown op None"),
])
def test_malformed_requests_are_refused_with_a_reason(tmp_path: Path, host: Host, doc: dict[str, Any],
                                                      error: str) -> None:
    t = tracer(tmp_path, host)
    reply = t.handle(doc)
    assert reply["ok"] is False and error in reply["error"]
    assert t.watched == {} and not (tmp_path / "store" / "profiles").exists()


def test_status_names_what_is_watched(tmp_path: Path, host: Host) -> None:
    t = tracer(tmp_path, host)
    host.start(1)
    assert watch(t, "c", 1, "web", "nonce:a")["ok"]
    status = t.handle({"op": "status"})
    assert status["ok"] and status["instance"] == "i1" and status["watching"] == ["c"] and status["pid"] == os.getpid()


def test_the_janitor_saves_a_vanished_container_after_the_grace(tmp_path: Path, host: Host) -> None:
    t = tracer(tmp_path, host, orphan_grace=60.0)
    host.start(1)
    host.start(2)
    assert watch(t, "gone", 1, "web", "nonce:a")["ok"]
    assert watch(t, "alive", 2, "web", "nonce:b")["ok"]
    sees(t, "gone", READ)
    host.cgroups[1].rmdir()  # no poststop hook will come
    assert t.janitor_step() is False
    assert "gone" in t.watched and t.watched["gone"].vanished_at is not None  # within the grace: kept
    assert ProfileStore(tmp_path / "store", 1).read("web") is None
    t.watched["gone"].vanished_at -= 61  # type: ignore[operator]
    assert t.janitor_step() is False
    assert set(t.watched) == {"alive"} and t.watched["alive"].vanished_at is None
    web = profile(tmp_path, "web")
    assert not web["complete"] and "read" in web["syscalls"]
    assert "no poststop hook came" in web["runs"][0]["problems"][0]
    assert [p["container_id"] for p in pending(tmp_path, "web")] == ["alive"]


def test_the_janitor_closes_an_idle_tracer_only(tmp_path: Path, host: Host) -> None:
    cfg = Config(store=tmp_path / "store", run_dir=tmp_path / "run", log_file=tmp_path / "log")
    t = Tracer(cfg, Log(), 30, instance="i1", recorder=FakeRecorder(), identify=host.identify)
    assert t.janitor_step() is False  # just started: not idle yet
    host.start(1)
    assert watch(t, "c", 1, "web", "nonce:a")["ok"]
    t.last_activity -= 60
    assert t.janitor_step() is False  # idle for long, but a container is watched
    assert record(t, "c", "web", "nonce:a")["ok"]
    t.last_activity -= 60
    assert t.janitor_step() is True and t.closing
    assert t.handle({"op": "status"}).get("retry")
    never = Tracer(cfg, Log(), 0, instance="i2", recorder=FakeRecorder(), identify=host.identify)
    never.last_activity -= 10**6
    assert never.janitor_step() is False  # idle_timeout 0: never detaches


def test_a_watch_without_a_key_is_taken(tmp_path: Path, host: Host) -> None:
    """A hook with neither nonce nor bundle sends no key (or null): the watch is keyed on nothing, as before."""
    t = tracer(tmp_path, host)
    host.start(1)
    assert t.handle({"op": "watch", "container_id": "c", "pid": 1, "profile": "web", "key": None})["ok"]
    assert t.watched["c"].key == ""


def test_a_recorded_run_gets_its_static_set_and_the_tracer_waits_for_it(tmp_path: Path, host: Host,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The watch names the bundle; after the record (the run durable first), what the run exec'd is analysed
    in the bundle's rootfs and merged into the profile; the tracer does not go idle meanwhile."""
    import json
    import shutil
    import threading

    bundle = tmp_path / "bundle"
    (bundle / "rootfs" / "bin").mkdir(parents=True)
    shutil.copy("/usr/bin/true", bundle / "rootfs" / "bin" / "true")  # dynamic: its libc is not in this rootfs
    (bundle / "config.json").write_text(json.dumps({"root": {"path": "rootfs"}, "process": {"args": ["true"]}}))
    cfg = Config(store=tmp_path / "store", run_dir=tmp_path / "run", log_file=tmp_path / "log")
    t = Tracer(cfg, Log(), 30, instance="i1", recorder=FakeRecorder(), identify=host.identify)
    host.start(1)
    assert t.handle({"op": "watch", "container_id": "c", "pid": 1, "profile": "web", "key": "nonce:a",
                     "bundle": str(bundle)})["ok"]
    sees(t, "c", READ)
    gate = threading.Event()
    merge = ProfileStore.merge_static
    monkeypatch.setattr(ProfileStore, "merge_static", lambda self, *a: (gate.wait(60), merge(self, *a))[1])
    assert record(t, "c", "web", "nonce:a")["complete"]
    assert "static" not in profile(tmp_path, "web")  # the record replied before the analysis
    t.last_activity -= 60
    assert t.janitor_step() is False  # idle, but the worker has work
    gate.set()
    assert t.static.wait(60)
    static = profile(tmp_path, "web")["static"]
    assert static["runs_analysed"] == 1 and static["programs"] == ["/bin/true"]
    assert any("libc.so.6" in path for path in static["unresolved"]), static["unresolved"]
