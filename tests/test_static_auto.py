"""The automatic static analysis of a learning run (hooks.daemon.static_record): what the run exec'd, read inside
its rootfs without leaving it, analysed off the record path and merged into the profile, gaps counted."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
from pathlib import Path

import pytest

from syscage import cli
from syscage.config import Config
from syscage.hooks.daemon.static_record import StaticWorker, exec_paths, gather_run
from syscage.inroot import ContainerRoot, NotReadable
from syscage.profile import Observation
from syscage.static_syscalls import analyse_gathered
from syscage.store import ProfileStore

PROBE = Path(__file__).parent / "fixtures" / "static_probe.c"


class _Log:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, object]]] = []

    def _say(self, level: str, event: str, **fields: object) -> None:
        self.events.append((level, event, fields))

    def info(self, event: str, **fields: object) -> None:
        self._say("info", event, **fields)

    def warning(self, event: str, **fields: object) -> None:
        self._say("warning", event, **fields)

    def exception(self, event: str, **fields: object) -> None:
        logging.exception(event)
        self._say("error", event, **fields)


def _bundle(tmp_path: Path, args: list[str]) -> Path:
    """A bundle whose rootfs has the probe (static), a script run by it, a text file, and hostile symlinks."""
    bundle = tmp_path / "bundle"
    root = bundle / "rootfs"
    (root / "usr" / "bin").mkdir(parents=True)
    subprocess.run(["gcc", "-static", "-O1", "-o", str(root / "usr" / "bin" / "probe"), str(PROBE)], check=True)
    (root / "bin").symlink_to("usr/bin")
    (root / "usr" / "bin" / "job").write_text("#!/usr/bin/env probe\n")
    (root / "usr" / "bin" / "notes").write_text("not a program\n")
    (root / "usr" / "bin" / "escape").symlink_to("../../../../../../usr/bin/gzip")  # the host's, from outside
    (root / "usr" / "bin" / "env").symlink_to("probe")  # only its name matters: `env NAME` runs NAME
    (bundle / "config.json").write_text(json.dumps({"root": {"path": "rootfs"}, "process": {"args": args}}))
    return bundle


def test_a_run_s_programs_are_read_inside_its_rootfs_and_gaps_counted(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, ["job"])
    files = {"/bin/job": ["r", "x"], "/usr/local/bin/probe": ["x"], "/usr/bin/notes": ["x"],
             "/usr/bin/escape": ["x"], "/etc/passwd": ["r"]}
    gathered = gather_run(str(bundle), files, tmp_path / "cache")
    assert list(gathered.programs) == ["/usr/bin/probe"]  # the script stands for its interpreter, found once
    # A PATH search's failed exec; and a symlink resolved inside the rootfs, where there is no gzip: never the
    # host's /usr/bin/gzip.
    assert gathered.absent == ["/usr/bin/escape", "/usr/local/bin/probe"]
    assert "/usr/bin/notes" in gathered.unresolved and "ELF" in gathered.unresolved["/usr/bin/notes"]
    static = analyse_gathered(gathered, tmp_path / "cache")
    assert {"rename", "poll", "getcpu", "keyctl"} <= set(static["syscalls"])
    assert static["unresolved_total"] == 1 and not static["binaries"]["/usr/bin/probe"]["cached"]
    again = analyse_gathered(gather_run(str(bundle), files, tmp_path / "cache"), tmp_path / "cache")
    assert again["binaries"]["/usr/bin/probe"]["cached"] and again["syscalls"] == static["syscalls"]


def test_escape_by_absolute_symlink_stays_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "abs").symlink_to("/etc/hostname")  # the host has one; this root does not
    (root / "fifo").parent.mkdir(exist_ok=True)
    os.mkfifo(root / "fifo")
    (root / "big").write_bytes(b"x" * 4096)
    with ContainerRoot(root) as inside:
        with pytest.raises(NotReadable) as absent:
            inside.read("/abs", 1 << 20)
        assert absent.value.absent
        with pytest.raises(NotReadable, match="not a regular file"):
            inside.read("/fifo", 1 << 20)  # and it did not block
        with pytest.raises(NotReadable, match="larger than"):
            inside.read("/big", 100)
        with pytest.raises(NotReadable):
            inside.read("/proc/self/exe", 1 << 30)
        assert inside.read("/../../big", 1 << 20)[1] == "/big"


def test_a_gone_bundle_is_counted_not_guessed(tmp_path: Path) -> None:
    gathered = gather_run(str(tmp_path / "gone"), {"/bin/sh": ["x"]}, tmp_path / "cache")
    assert gathered.unresolved_total == 1 and "config.json" in gathered.unresolved["/bin/sh"]
    assert exec_paths({"/a": ["r"], "/b": ["x", "r"], "/c": ["x"]}) == ["/b", "/c"]


def test_the_worker_merges_each_run_into_the_profile_and_show_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = ProfileStore(tmp_path / "store", 1)
    store.record_run("web", Observation(container_id="c1", started="t", stopped="t", cutover="seccomp",
                                        syscalls=["read", "write"]))
    bundle = _bundle(tmp_path, ["/usr/bin/probe"])
    log = _Log()
    worker = StaticWorker(lambda: store, tmp_path / "cache", log)
    worker.after_record("web", "c1", str(bundle), {"/usr/bin/notes": ["x"], "/usr/sbin/probe": ["x"]})
    worker.after_record("web", "c2", str(tmp_path / "gone"), {})
    assert worker.wait(120)
    static = store.read("web")["static"]
    assert static["runs_analysed"] == 2 and static["unresolved_total"] == 2
    assert "rename" in static["syscalls"] and static["programs"] == ["/usr/bin/probe"]
    assert static["absent"] == ["/usr/sbin/probe"]
    assert any("/usr/bin/probe (syscall instruction)" in w for w in static["syscalls"]["getcpu"])
    config = Config(store=tmp_path / "store", run_dir=tmp_path / "run", coverage="learned+static")
    cli.cmd_show(config, argparse.Namespace(name="web", json=False, since=None))
    out = capsys.readouterr().out
    assert "static analysis: the programs of 2 of 1 runs" in out  # c2 was analysed with no run recorded
    assert "not analysed: 2 path(s):" in out and "/usr/bin/notes" in out
    added = [line.split()[0] for line in out.split("added by seccomp.coverage", 1)[1].splitlines()[1:]
             if line.startswith("  ")]
    assert {"rename", "getcpu"} <= set(added) and "keyctl" not in added  # found, dangerous: never added
    assert "getcpu" in out and "/usr/bin/probe (syscall instruction)" in out


def test_no_bundle_is_logged_and_nothing_merged(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "store", 1)
    log = _Log()
    StaticWorker(lambda: store, tmp_path / "cache", log).after_record("web", "c1", "", {"/bin/sh": ["x"]})
    assert [e for e in log.events if e[0] == "warning" and "no bundle" in e[1]]


def test_a_full_queue_and_lost_paths_are_counted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from syscage.hooks.daemon import static_record

    store = ProfileStore(tmp_path / "store", 1)
    store.record_run("web", Observation(container_id="c1", started="t", stopped="t", cutover="seccomp",
                                        syscalls=["read"]))
    monkeypatch.setattr(static_record, "MAX_QUEUED", 1000)  # the probe alone is larger
    worker = StaticWorker(lambda: store, tmp_path / "cache", _Log())
    worker.after_record("web", "c1", str(_bundle(tmp_path, ["/usr/bin/probe"])), {}, {"paths_unresolved": 3})
    assert worker.wait(120) and worker.held == 0
    static = store.read("web")["static"]
    assert static["paths_lost"] == 3 and static["unresolved_total"] == 1 and not static["syscalls"]
    assert "were waiting for the analysis" in static["unresolved"]["/usr/bin/probe"]
    cli.cmd_show(Config(store=tmp_path / "store", run_dir=tmp_path / "run"),
                 argparse.Namespace(name="web", json=False, since=None))
    assert "could not record 3 paths" in capsys.readouterr().out


def test_content_cached_meanwhile_is_not_analysed_twice(tmp_path: Path) -> None:
    """Two runs gathered before either was analysed: the second finds the first's result in the cache."""
    bundle = str(_bundle(tmp_path, ["/usr/bin/probe"]))
    first = gather_run(bundle, {}, tmp_path / "cache")
    second = gather_run(bundle, {}, tmp_path / "cache")
    assert list(first.pending) == list(second.pending) == ["/usr/bin/probe"]
    assert not analyse_gathered(first, tmp_path / "cache")["binaries"]["/usr/bin/probe"]["cached"]
    assert analyse_gathered(second, tmp_path / "cache")["binaries"]["/usr/bin/probe"]["cached"]


def test_hostile_elf_content_is_one_unanalysable_object(tmp_path: Path) -> None:
    """A truncated or corrupt ELF object in the container is counted as not analysable, nothing more."""
    bundle = _bundle(tmp_path, ["/usr/bin/probe"])
    probe = (bundle / "rootfs" / "usr" / "bin" / "probe").read_bytes()
    (bundle / "rootfs" / "usr" / "bin" / "cut").write_bytes(probe[:4096])
    broken = bytearray(probe)
    broken[0x27] = 0xC5  # e_phoff's top byte: pyelftools raises OverflowError, not one of its own errors
    (bundle / "rootfs" / "usr" / "bin" / "broken").write_bytes(bytes(broken))
    gathered = gather_run(str(bundle), {"/usr/bin/cut": ["x"], "/usr/bin/broken": ["x"]}, tmp_path / "cache")
    static = analyse_gathered(gathered, tmp_path / "cache")
    assert static["programs"] == ["/usr/bin/probe"] and static["unresolved_total"] == 2, static["unresolved"]



def test_runs_of_one_image_hold_its_content_once_and_the_child_analyses_it_alike(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many runs of one image queued at once hold each program's content once (the tracer's memory with 50
    learners); the disassembly runs in a child process (its memory goes when it ends) and finds what the
    analysis in this process finds."""
    import threading

    from syscage.hooks.daemon import static_record

    store = ProfileStore(tmp_path / "store", 1)
    bundle = _bundle(tmp_path, ["/usr/bin/probe"])
    worker = StaticWorker(lambda: store, tmp_path / "cache", _Log())
    release = threading.Event()
    real = static_record.analyse_in_child

    def held_back(gathered: object, cache_dir: Path) -> dict:
        release.wait(60)
        return real(gathered, cache_dir)

    monkeypatch.setattr(static_record, "analyse_in_child", held_back)
    for cid in ("c1", "c2", "c3"):
        store.record_run("web", Observation(container_id=cid, started="t", stopped="t", cutover="seccomp",
                                            syscalls=["read"]))
        worker.after_record("web", cid, str(bundle), {})
    size = len((bundle / "rootfs" / "usr" / "bin" / "probe").read_bytes())
    assert worker.held == size and len(worker.shared) == 1  # three runs, one copy
    release.set()
    assert worker.wait(120) and worker.held == 0 and not worker.shared
    assert store.read("web")["static"]["runs_analysed"] == 3
    in_child = real(gather_run(str(bundle), {}, tmp_path / "child-cache"), tmp_path / "child-cache")
    here = analyse_gathered(gather_run(str(bundle), {}, tmp_path / "own-cache"), tmp_path / "own-cache")
    assert in_child["syscalls"] == here["syscalls"] and "rename" in here["syscalls"]
