"""syscage.jsonlog: the start path's JSON-lines writer, and that its records are the ones structlog writes
for the long-lived processes (syscage.logs), so that one log reads as one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import structlog

from syscage.config import Config
from syscage.jsonlog import JsonLog
from syscage.logs import setup_logging

STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
def structlog_reset() -> object:
    yield
    structlog.reset_defaults()


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_same_records_as_structlog(tmp_path: Path, structlog_reset: object) -> None:
    fields = {"container_id": "c1", "slot": 3, "problems": ["a", "b"], "path": Path("/x"), "ok": None}
    ours, theirs = tmp_path / "ours.jsonl", tmp_path / "theirs.jsonl"
    JsonLog(str(ours), "info", "hook", profile="web").bind(mode="learn").info("watching", **fields)
    JsonLog(str(ours), "info", "hook", profile="web").error("failed", error="boom")
    log = setup_logging(Config(log_file=theirs, log_level="info"), "hook").bind(profile="web")
    log.bind(mode="learn").info("watching", **{**fields, "path": str(fields["path"])})
    log.error("failed", error="boom")
    mine, reference = records(ours), records(theirs)
    assert len(mine) == len(reference) == 2
    for a, b in zip(mine, reference, strict=True):
        assert STAMP.fullmatch(a.pop("timestamp")) and STAMP.fullmatch(b.pop("timestamp"))
        assert a == b
    # Key order too: both sort the keys.
    assert [list(r) for r in records(ours)] == [list(r) for r in records(theirs)]


def test_levels_below_the_configured_one_are_dropped(tmp_path: Path) -> None:
    log_file = tmp_path / "sub" / "log.jsonl"
    log = JsonLog(str(log_file), "info", "hook", container_id="c1", profile="web")
    log.info("watching", slot=3)
    log.log("debug", "not written at info level")
    log.error("failed", error="boom")
    lines = records(log_file)
    assert [e["event"] for e in lines] == ["watching", "failed"]
    assert lines[0]["component"] == "hook" and lines[0]["container_id"] == "c1" and lines[0]["slot"] == 3
    assert lines[1]["level"] == "error"


def test_no_config_no_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYSCAGE_CONFIG", str(tmp_path / "missing.toml"))
    log = JsonLog.of(None, "runtime")
    log.error("dropped")  # no config to name a log: nothing is written, nothing raises
    assert log.log_file == ""


def test_an_unwritable_log_is_one_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    JsonLog(str(blocker / "log"), "info", "hook").error("lost")
    assert capsys.readouterr().err.startswith("syscage: warning: cannot write log ")
