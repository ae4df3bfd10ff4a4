"""The report page: convergence per run, the chart, escaping, a large profile."""

from __future__ import annotations

from pathlib import Path

import pytest

from syscage.config import Config
from syscage.profile import Observation
from syscage.report import build_report, convergence
from syscage.store import ProfileStore
from syscage.syscalls import syscall_name


def learn(store: ProfileStore, runs: int, cid: str = "c") -> None:
    names = [n for n in (syscall_name(i) for i in range(400)) if n][:200]
    for run in range(runs):
        k = min(200, 40 + int(160 * (1 - 0.9 ** run)))
        when = f"2026-11-{1 + run // 24:02d}T{run % 24:02d}:00:00.000Z"
        store.record_run("big", Observation(f"{cid}{run}", when, when, "seccomp", syscalls=names[:k]))


def test_convergence_counts_what_each_run_added(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path, 1)
    learn(store, 3)
    profile = store.read("big")
    assert profile is not None
    points = convergence(profile)
    # Run 1 saw 40 syscalls; `exit`, on the floor since run 1 and observed by run 3, counts from run 1 too.
    assert [(p["run"], p["new"], p["total"]) for p in points] == [(1, 41, 41), (2, 15, 56), (3, 14, 70)]
    learned = [e for e in profile["syscalls"].values() if set(e["sources"]) - {"floor", "kernel"}]
    assert points[-1]["total"] == len(learned)


def test_untrusted_text_is_escaped(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path, 1)
    learn(store, 1, cid='<script>alert(1)</script>"')
    profile = store.read("big")
    assert profile is not None
    row = {"time": "t", "container_id": "<img src=x>", "mode": "enforce", "kind": "apparmor", "operation": "open",
           "path": "/tmp/<u>x", "outcome": "denied", "count": 1}
    page = build_report(profile, Config(), [row], ["note <em>"])
    assert "<script>" not in page and "<img src=x>" not in page and "<u>" not in page and "<em>" not in page
    assert "&lt;img src=x&gt;" in page


@pytest.mark.parametrize("runs", [100])
def test_report_of_a_large_profile(tmp_path: Path, runs: int) -> None:
    """200 syscalls, 100 runs: one page, bars for every kept run."""
    store = ProfileStore(tmp_path, 1)
    learn(store, runs)
    profile = store.read("big")
    assert profile is not None and len(profile["syscalls"]) >= 200
    page = build_report(profile, Config(), [], [])
    assert page.count('class="bar"') == runs
