"""rm, prune and show --since: the store's removal and pruning, the time parsing, and the CLI."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from syscage import cli
from syscage.curate import changes_since, iso, parse_duration, parse_when
from syscage.errors import SyscageError
from syscage.profile import Observation
from syscage.store import ProfileStore

OLD = "2026-01-01T00:00:00.000Z"
NEW = "2026-06-01T00:00:00.000Z"
FLOOR = ("exit", "exit_group", "restart_syscall", "rt_sigreturn")


def _obs(cid: str, syscalls: list[str], stopped: str, base: list[str] | None = None) -> Observation:
    return Observation(container_id=cid, started=stopped, stopped=stopped, cutover="exec", syscalls=syscalls,
                       runtime_base=base or [])


def _store(tmp_path: Path) -> ProfileStore:
    store = ProfileStore(tmp_path / "store", 1, FLOOR, tmp_path / "notes")
    store.record_run("web", _obs("c1", ["read", "write", "keyctl"], OLD, base=["capset"]))
    store.record_run("web", _obs("c2", ["read", "write"], NEW))
    return store


def test_durations_and_dates() -> None:
    assert parse_duration("30d") == timedelta(days=30) and parse_duration("2w") == timedelta(days=14)
    now = datetime(2026, 6, 10, tzinfo=UTC)
    assert parse_when("7d", now) == datetime(2026, 6, 3, tzinfo=UTC)
    assert parse_when("2026-06-01", now) == datetime(2026, 6, 1, tzinfo=UTC)
    assert iso(parse_when("2026-06-01T12:00:00+02:00")) == "2026-06-01T10:00:00.000Z"
    for bad in ("30", "1y", "yesterday", ""):
        with pytest.raises(SyscageError):
            parse_when(bad) if bad != "30" else parse_duration(bad)


def test_prune_drops_stale_syscalls_but_never_the_floor_or_runtime_base(tmp_path: Path) -> None:
    store = _store(tmp_path)
    cutoff = "2026-03-01T00:00:00.000Z"
    assert store.prune("web", cutoff, dry_run=True) == ["keyctl"]
    assert "keyctl" in store.read("web")["syscalls"]  # a dry run changes nothing
    assert store.prune("web", cutoff) == ["keyctl"]
    profile = store.read("web")
    assert "keyctl" not in profile["syscalls"] and "capset" in profile["syscalls"]  # runtime-base, last seen OLD
    assert set(FLOOR) <= set(profile["syscalls"])
    assert profile["pruned"][0]["syscalls"] == ["keyctl"] and profile["pruned"][0]["last_seen_before"] == cutoff
    names = json.loads((tmp_path / "store" / "profiles" / "web" / "seccomp.json").read_text())["syscalls"][0]["names"]
    assert "keyctl" not in names and "read" in names
    assert store.prune("web", cutoff) == []
    with pytest.raises(SyscageError, match="no profile named nope"):
        store.prune("nope", cutoff)
    assert not (tmp_path / "store" / "profiles" / "nope").exists()


def test_remove_is_atomic_and_refused_while_learning(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.add_pending("web", {"id": "p1", "container_id": "c9", "instance": "live"})
    with pytest.raises(SyscageError, match="learning into it now"):
        store.remove("web", live_instance="live")
    assert store.read("web") is not None
    store.remove("web", live_instance="other")  # its tracer is gone: a lost run, removed with the profile
    assert store.names() == [] and store.read("web") is None
    assert os.listdir(tmp_path / "store" / "profiles") == []
    with pytest.raises(SyscageError, match="no profile named web"):
        store.remove("web")


def test_a_learner_waiting_on_the_lock_of_a_removed_profile_is_not_lost(tmp_path: Path) -> None:
    store = _store(tmp_path)
    done = threading.Event()

    def learner() -> None:
        store.record_run("web", _obs("c3", ["openat"], NEW))
        done.set()

    with store.locked("web"):
        thread = threading.Thread(target=learner)
        thread.start()
        time.sleep(0.2)  # not a timing assertion: gives the learner time to wait on this lock
        gone = tmp_path / "store" / "profiles" / ".gone"
        os.rename(tmp_path / "store" / "profiles" / "web", gone)  # what remove does under the lock
    thread.join(10)
    assert done.is_set()
    profile = store.read("web")
    assert profile is not None and [r["container_id"] for r in profile["runs"]] == ["c3"]
    assert store.names() == ["web"]  # .gone, a leftover of an interrupted rm, is not a profile


def test_changes_since(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.record_run("web", _obs("c3", ["openat"], "2026-07-01T00:00:00.000Z"))
    changes = changes_since(store.read("web"), parse_when("2026-05-01"))
    assert [a["syscall"] for a in changes["added"]] == ["openat"]
    assert [r["container_id"] for r in changes["runs"]] == ["c2", "c3"]


@pytest.fixture
def config_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProfileStore:
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nstore = "{tmp_path}/store"\nrun_dir = "{tmp_path}/run"\n')
    monkeypatch.setenv("SYSCAGE_CONFIG", str(config))
    return _store(tmp_path)


def test_cli_rm_prune_show_since(config_env: ProfileStore, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert cli.main(["prune", "web", "--unused-for", "10000d"]) == 0
    assert "nothing last seen before" in capsys.readouterr().out
    assert cli.main(["prune", "web", "--unused-for", "1d", "--dry-run", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pruned"] == ["keyctl", "read", "write"]
    assert cli.main(["prune", "web", "--unused-for", "soon"]) == 1
    assert "not a duration" in capsys.readouterr().err
    assert cli.main(["show", "web", "--since", "2026-05-01"]) == 0
    out = capsys.readouterr().out
    assert "syscalls added (0)" in out and "c2" in out and "c1" not in out
    assert cli.main(["rm", "web"]) == 1  # not a terminal, no --yes
    err = capsys.readouterr().err
    assert "pass --yes" in err and len(err.splitlines()) == 1
    assert config_env.read("web") is not None
    assert cli.main(["rm", "web", "--yes"]) == 0
    assert config_env.read("web") is None


def test_show_says_what_was_withheld(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nstore = "{tmp_path}/store"\nrun_dir = "{tmp_path}/run"\n'
                      '[seccomp]\nnever_allow = ["keyctl"]\n')
    monkeypatch.setenv("SYSCAGE_CONFIG", str(config))
    from syscage.config import load_config

    ProfileStore.from_config(load_config()).record_run("web", _obs("c1", ["read", "keyctl"], NEW))
    assert cli.main(["show", "web"]) == 0
    out = capsys.readouterr().out
    assert "status: complete" in out and "needed keyctl, withheld by seccomp.never_allow" in out
    assert cli.main(["show", "web", "--since", "2026-05-01"]) == 0
    assert "withheld keyctl" in capsys.readouterr().out
