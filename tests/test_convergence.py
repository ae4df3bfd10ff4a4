"""Convergence at enforce and in the CLI: a warning, or a refusal that never leaves a container less confined."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from syscage import cli
from syscage.config import Config
from syscage.jsonlog import JsonLog
from syscage.oci import Selection
from syscage.profile import Observation
from syscage.shim.prepare import NotConverged, modifiers_for
from syscage.store import ProfileStore


def _learn(store: Path, workloads: list[list[str]]) -> None:
    for i, syscalls in enumerate(workloads):
        t0, t1 = f"2026-01-01T00:{i:02d}:00Z", f"2026-01-01T00:{i:02d}:30Z"
        ProfileStore(store, 1).record_run("web", Observation(container_id=f"c{i}", started=t0, stopped=t1,
                                                             cutover="seccomp", syscalls=syscalls))


def _plan(config: Config) -> list[object]:
    spec = {"process": {"args": ["true"]}, "linux": {}}
    return modifiers_for(Selection("enforce", "web"), config, JsonLog.of(config, "runtime"), (False, None),
                         spec).modifiers


def _events(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_enforce_of_a_profile_not_converged_warns(tmp_path: Path) -> None:
    _learn(tmp_path, [["read", "write"]])
    config = Config(store=tmp_path, run_dir=tmp_path / "run", log_file=tmp_path / "log", apparmor_mode="off")
    assert _plan(config)
    (warning,) = [e for e in _events(tmp_path / "log") if "converged" in str(e["event"])]
    assert warning["level"] == "warning" and "NOT converged (0 run(s)" in str(warning["convergence"])


@pytest.mark.parametrize("on_missing", ["fail", "allow"])
def test_refuse_fails_the_create_even_when_a_missing_profile_would_run_unconfined(tmp_path: Path,
                                                                                   on_missing: str) -> None:
    _learn(tmp_path, [["read", "write"]])
    config = Config(store=tmp_path, run_dir=tmp_path / "run", log_file=tmp_path / "log", apparmor_mode="off",
                    convergence_on_enforce="refuse", on_missing_profile=on_missing)
    with pytest.raises(NotConverged) as refused:
        _plan(config)
    assert str(refused.value).count("\n") <= 1 and "profile web has not converged: 0 run(s)" in refused.value.what
    _learn(tmp_path, [["read", "write"]] * 5)  # five more runs with nothing new: converged by the default rule
    assert _plan(config)
    assert not [e for e in _events(tmp_path / "log") if "converged" in str(e["event"])]


def test_show_and_list_say_converged_and_flag_chance(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _learn(tmp_path, [["read", "write", "mkdir"], *[["read", "write"]] * 5])
    config = Config(store=tmp_path, run_dir=tmp_path / "run")
    cli.cmd_show(config, argparse.Namespace(name="web", json=False, since=None))
    out = capsys.readouterr().out
    assert "learning: converged (5 run(s), 2.5 min traced since anything new; rule: 5 complete runs" in out
    assert "chance-dependent (seen in fewer than 50% of 6 runs" in out and "mkdir (1/6)" in out
    assert [line for line in out.splitlines() if "chance-dependent" in line and line.startswith("  ")] == [
        line for line in out.splitlines() if line.startswith("  mkdir ")]
    cli.cmd_list(config, argparse.Namespace(json=True))
    (row,) = json.loads(capsys.readouterr().out)
    assert row["converged"] and row["chance_dependent"] == ["mkdir"] and row["runs_since_new"] == 5
    cli.cmd_list(config._replace(convergence_min_runs=6), argparse.Namespace(json=False))
    assert "NOT converged" in capsys.readouterr().out
