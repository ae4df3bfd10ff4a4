"""Checkpoints of learning containers in the store: a run in progress that its final record (or, after a tracer
crash, its settling) replaces, counting the run once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syscage.profile import Observation
from syscage.store import ProfileStore


def _obs(cid: str, syscalls: list[str], stopped: str = "2026-01-01T00:00:05.000Z", problems: list[str] | None = None,
         cutover: str = "seccomp") -> Observation:
    return Observation(container_id=cid, started="2026-01-01T00:00:00.000Z", stopped=stopped, cutover=cutover,
                       syscalls=syscalls, problems=problems or [])


def _store(tmp_path: Path) -> ProfileStore:
    store = ProfileStore(tmp_path, 1, node="node-a")
    store.record_run("web", _obs("old", ["read"]))
    return store


def _pending(store: ProfileStore, cid: str, pid: str) -> None:
    store.add_pending("web", {"id": pid, "container_id": cid, "instance": "i1", "key": f"k-{cid}",
                              "started": "2026-01-01T00:00:00.000Z"})


def test_final_record_replaces_the_checkpoint_and_counts_the_run_once(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _pending(store, "c1", "p1")
    store.checkpoint_run("web", _obs("c1", ["read", "socket"], "2026-01-01T00:00:01.000Z"), "p1", "k-c1")
    second = store.checkpoint_run("web", _obs("c1", ["read", "socket", "bind"], "2026-01-01T00:00:02.000Z"), "p1",
                                  "k-c1")
    assert second is not None
    assert [r.get("in_progress", False) for r in second["runs"]] == [False, True]  # one checkpoint, replaced
    assert second["syscalls"]["bind"]["sources"] == ["checkpoint"] and second["syscalls"]["bind"]["runs"] == 0
    assert second["runs_total"] == 1 and second["syscalls"]["read"]["runs"] == 1
    seccomp = json.loads((tmp_path / "profiles" / "web" / "seccomp.json").read_text())
    assert {"socket", "bind"} <= set(seccomp["syscalls"][0]["names"])  # enforceable while it still runs

    final = store.record_run("web", _obs("c1", ["read", "socket", "bind", "listen"]), pending="p1", key="k-c1")
    assert final is not None
    assert [r["container_id"] for r in final["runs"]] == ["old", "c1"] and not final["runs"][1].get("in_progress")
    assert final["runs"][1]["node"] == "node-a"
    for name in ("socket", "bind", "listen"):
        assert final["syscalls"][name]["sources"] == ["observed"] and final["syscalls"][name]["runs"] == 1
    assert final["syscalls"]["read"]["runs"] == 2 and final["runs_total"] == 2
    assert final["convergence"]["new_in_last"] == ["bind", "listen", "socket"]  # new, though a checkpoint saw them
    assert store.checkpoint_run("web", _obs("c1", ["read"]), "p1", "k-c1") is None  # late: recorded already
    assert not store.run_recorded("web", "c2", "k-c2")


@pytest.mark.parametrize("settling", [True, False], ids=["settled-by-the-next-tracer", "recorded-by-the-hook"])
def test_an_untraced_run_keeps_its_checkpoint_and_says_what_is_missing(tmp_path: Path, settling: bool) -> None:
    store = _store(tmp_path)
    _pending(store, "c1", "p1")
    store.checkpoint_run("web", _obs("c1", ["read", "socket"], "2026-01-01T00:00:01.000Z"), "p1", "k-c1")
    assert not store.run_recorded("web", "c1", "k-c1")  # a checkpoint is no record: the real one still counts
    lost = _obs("c1", [], problems=["its run was never recorded: the tracer stopped"], cutover="none")
    settled = store.record_run("web", lost, pending="p1", settling=settling, key="k-c1")
    assert settled is not None and not settled["complete"]
    (run,) = [r for r in settled["runs"] if r["container_id"] == "c1"]
    assert not run.get("in_progress") and "at most tracer.checkpoint_interval" in run["problems"][-1]
    assert settled["syscalls"]["socket"]["sources"] == ["observed"] and settled["syscalls"]["socket"]["runs"] == 1


def test_another_containers_checkpoint_survives_a_record(tmp_path: Path) -> None:
    store = _store(tmp_path)
    for cid, pid in (("c1", "p1"), ("c2", "p2")):
        _pending(store, cid, pid)
    store.checkpoint_run("web", _obs("c1", ["socket"]), "p1", "k-c1")
    store.checkpoint_run("web", _obs("c2", ["socket", "bind"]), "p2", "k-c2")
    done = store.record_run("web", _obs("c1", ["getpid"]), pending="p1", key="k-c1")
    assert done is not None
    assert done["syscalls"]["socket"]["checkpoint_of"] == ["k-c2"]
    assert done["syscalls"]["bind"]["sources"] == ["checkpoint"]
    assert [r["container_id"] for r in done["runs"] if r.get("in_progress")] == ["c2"]
