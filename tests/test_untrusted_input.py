"""Untrusted documents that are valid enough to reach the code but not what it expects: JSON nested
deeper than the parser can go, and profile.json files whose run records are malformed. Each is one
line, never a traceback."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from syscage import cli, oci
from syscage.errors import SyscageError
from syscage.hooks import hook
from syscage.hooks.fast_prestart import watch_prepared
from syscage.oci import load_spec, parse_hook_state
from syscage.profile import new_profile
from syscage.profile_schema import check_profile
from syscage.shim.prepare import CreateRequest, prepare_bundle

DEEP = b"[" * 3000 + b"]" * 3000




def test_deep_json_is_one_error() -> None:
    with pytest.raises(SyscageError, match="nested too deeply"):
        oci.load_json_doc(DEEP, "x", "y")
    with pytest.raises(SyscageError, match="hook state on stdin is nested too deeply"):
        parse_hook_state(b'{"id": "c", "bundle": "/b", "annotations": ' + DEEP + b"}")


def test_deep_config_json_in_a_bundle(tmp_path: Path, private_config: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    raw = b'{"annotations": {"io.syscage.mode": "learn"}, "process": ' + DEEP + b"}"
    (tmp_path / "config.json").write_bytes(raw)
    with pytest.raises(SyscageError, match="nested too deeply"):
        load_spec(tmp_path)
    capsys.readouterr()
    assert prepare_bundle(CreateRequest(str(tmp_path), raw, "c1")).code == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nested too deeply" in err and "c1" in err
    assert (tmp_path / "config.json").read_bytes() == raw


def test_deep_hook_state(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                         private_config: Path) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(DEEP)))
    assert hook.main(["prestart"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nested too deeply" in err
    assert watch_prepared('--prepared={"socket": "/s"}', DEEP) is False  # hands over to the full hook


def good_profile(name: str = "web") -> dict:
    profile = new_profile(name, "SCMP_ARCH_X86_64", "2026-01-01T00:00:00Z")
    profile["runs"] = [{"container_id": "c1", "started": "s", "stopped": "t", "cutover": "seccomp",
                        "runtime": "runc", "kernel": "6", "pre_exec": [], "counters": {}, "problems": [],
                        "complete": True, "syscall_count": 0}]
    return profile


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: p.update(runs=[{}]), "run record 0 has no valid 'container_id'"),
    (lambda p: p["runs"][0].update(syscall_count=None), "'syscall_count'"),
    (lambda p: p["runs"][0].update(syscall_count=True), "'syscall_count'"),
    (lambda p: p["runs"][0].update(cutover={"a": 1}), "'cutover'"),
    (lambda p: p["runs"][0].update(problems=[3]), "problem that is not text"),
    (lambda p: p["runs"][0].pop("complete"), "'complete'"),
    (lambda p: p.pop("updated"), "'updated'"),
])
def test_malformed_run_records_are_corrupt(change, message: str) -> None:  # type: ignore[no-untyped-def]
    profile = good_profile()
    check_profile(profile, "web")
    change(profile)
    with pytest.raises(SyscageError, match="profile web is corrupt") as exc:
        check_profile(profile, "web")
    assert message in str(exc.value)


def store_with(private_config: Path, name: str, raw: bytes) -> None:
    directory = private_config / "store" / "profiles" / name
    directory.mkdir(parents=True)
    (directory / "profile.json").write_bytes(raw)


@pytest.mark.parametrize("raw", [
    json.dumps({**good_profile(), "runs": [{}]}).encode(),
    b'{"kind": "syscage-profile", "x": ' + DEEP + b"}",
])
def test_show_and_list_of_a_bad_profile(private_config: Path, capsys: pytest.CaptureFixture[str],
                                        raw: bytes) -> None:
    store_with(private_config, "web", raw)
    assert cli.main(["show", "web"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "profile web is corrupt" in err
    assert cli.main(["list"]) == 0
    assert "CORRUPT" in capsys.readouterr().out
