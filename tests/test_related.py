"""seccomp.coverage: related syscalls (syscage.related) and the static set (syscage.coverage) at enforce."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from syscage import cli
from syscage.config import Config
from syscage.coverage import DANGEROUS, additions, never_added
from syscage.profile import Observation
from syscage.related import RELATED, related_to
from syscage.shim.prepare import enforceable_seccomp
from syscage.store import ProfileStore
from syscage.syscalls import syscall_number


def _allowed(seccomp: dict[str, Any]) -> set[str]:
    return {n for r in seccomp["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" for n in r["names"]}


def _learn(store: Path, syscalls: list[str], coverage: str = "learned") -> ProfileStore:
    s = ProfileStore(store, 1, coverage=coverage)
    s.record_run("web", Observation(container_id="c1", started="t", stopped="t", cutover="seccomp",
                                    syscalls=syscalls))
    return s


def test_every_related_name_is_known_and_none_is_dangerous() -> None:
    names = [n for group, _ in RELATED for n in group]
    assert len(names) == len(set(names))  # a syscall is in one group only
    assert [n for n in names if syscall_number(n) is None] == []
    assert [n for n in names if n in DANGEROUS] == []
    assert all(why for _, why in RELATED)


def test_related_adds_the_other_entry_points_of_a_learned_operation() -> None:
    added = related_to({"rename", "poll", "read"})
    assert {"renameat", "renameat2", "ppoll", "select", "pselect6", "epoll_wait", "readv", "pread64"} <= set(added)
    assert "rename" not in added and "mkdir" not in added
    assert added["renameat2"].startswith("same operation as rename (")


def test_coverage_settings() -> None:
    profile: dict[str, Any] = {"syscalls": {"rename": {}, "read": {}, "openat": {}}}
    assert additions(profile, "learned") == {}
    related = additions(profile, "learned+related")
    assert {"renameat", "renameat2", "open", "openat2"} <= set(related)
    # With a static set, related ones only where the binaries can reach them; static adds the rest of the set,
    # never a dangerous one.
    profile["static"] = {"syscalls": {"renameat": ["/bin/x: libc renameat"], "keyctl": ["/bin/x: syscall 250"],
                                      "bpf": ["/bin/x"], "fsync": ["/bin/x: libc fsync"], "read": ["/bin/x"]},
                         "binaries": {"/bin/x": {}}}
    assert set(additions(profile, "learned+related")) == {"renameat"}
    static = additions(profile, "learned+static")
    assert set(static) == {"renameat", "fsync"} and "/bin/x: libc fsync" in static["fsync"]
    assert never_added("keyctl") and never_added("unshare") and never_added("kexec_load") and not never_added("fsync")


def test_enforce_and_seccomp_json_follow_the_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _learn(tmp_path, ["read", "write", "rename"], coverage="learned+related")
    stored = ProfileStore(tmp_path, 1).read_seccomp("web")
    assert stored and {"renameat", "renameat2"} <= _allowed(stored)  # the store renders with its coverage
    learned = _allowed(enforceable_seccomp("web", Config(store=tmp_path)))
    assert "renameat" not in learned and "rename" in learned
    config = Config(store=tmp_path, coverage="learned+related", never_allow=("renameat2",))
    related = _allowed(enforceable_seccomp("web", config))
    assert {"renameat", "writev", "pwrite64"} <= related and "renameat2" not in related  # never_allow wins
    related_own = _allowed(enforceable_seccomp("web", config, {"defaultAction": "SCMP_ACT_ALLOW"}))
    assert "renameat" in related_own
    cli.cmd_show(config, argparse.Namespace(name="web", json=False, since=None))
    out = capsys.readouterr().out
    assert "added by seccomp.coverage = learned+related" in out
    assert "  renameat                 same operation as rename (rename a path" in out
    assert "  renameat2 " not in out


def test_diff_and_check_see_what_enforce_allows(tmp_path: Path) -> None:
    from syscage.review import load_policy

    _learn(tmp_path, ["read", "rename"])
    learned = load_policy("web", ProfileStore(tmp_path, 1), (), "SCMP_ARCH_X86_64")
    related = load_policy("web", ProfileStore(tmp_path, 1, coverage="learned+related", never_allow=("renameat2",)),
                          (), "SCMP_ARCH_X86_64")
    assert "renameat" not in learned.allowed
    assert "renameat" in related.allowed and "renameat2" not in related.allowed
