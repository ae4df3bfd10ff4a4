"""The static set of every learning run, with no operator step: what the run exec'd is analysed by the tracer.

When a run is recorded (its record is durable in the profile first, so nothing here can lose it):
  1. at once, while the container's rootfs is still there (a poststop hook runs before containerd unmounts
     it): the programs the run exec'd (the tracer's execve/execveat paths, and the spec's process.args[0],
     whose exec the tracer cannot see in exec cut-over mode) and the loader and shared libraries they map are
     read inside the rootfs (syscage.inroot: never leaving it) and hashed; what the cache knows costs no more.
     Bounded: size caps per object and per run (syscage.static_syscalls.MAX_*).
  2. in one worker thread, after the record's reply: what the cache does not know is analysed (seconds for
     libc, tens of seconds for a large Go binary) in a child process (its disassembly costs a hundred MB or
     more, which must not stay in the tracer's own memory), then the run's static set is merged into the profile under
     its lock (ProfileStore.merge_static, an atomic write). The tracer does not go idle while the worker has
     work; when it stops it waits a few seconds only (tracer.STATIC_WAIT): a run whose analysis is cut short,
     or a tracer killed meanwhile, leaves that run unanalysed, which `syscage show` says (static.runs_analysed
     against the profile's runs).
Paths that cannot be analysed are counted and named in the profile, never guessed.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

STATIC_CACHE = "static-cache"  # as syscage.static_cli: one cache per store
MAX_QUEUED = 1 << 30  # content waiting for the worker, all runs together: beyond it a run's new objects are counted
PATH_LOSSES = ("paths_unresolved", "paths_truncated", "paths_fault", "paths_dropped")  # as tracer_bpf's


def exec_paths(files: dict[str, list[str]] | None) -> list[str]:
    """The paths the run exec'd (AppArmor's `x` access), as the container named them."""
    return sorted(path for path, kinds in (files or {}).items() if "x" in kinds)


def rootfs_and_entry(bundle: str) -> tuple[Path, str | None]:
    """The bundle's root.path (a relative one is the bundle's) and process.args[0]. Raises ValueError."""
    if not bundle.startswith("/"):
        raise ValueError("the watch named no bundle (a hook older than the static analysis)")
    try:
        spec = json.loads((Path(bundle) / "config.json").read_text())
        root = Path(spec["root"]["path"])
        args = (spec.get("process") or {}).get("args") or []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read the bundle's config.json: {exc}") from None
    return (root if root.is_absolute() else Path(bundle) / root), (str(args[0]) if args else None)


def gather_run(bundle: str, files: dict[str, list[str]] | None, cache_dir: Path) -> Any:
    """Phase one for a run: a Gathered (syscage.static_syscalls) of what it exec'd."""
    from syscage.inroot import ContainerRoot
    from syscage.static_syscalls import Gathered, NotAnalysable, gather, resolve_program

    paths = exec_paths(files)
    try:
        rootfs, entry = rootfs_and_entry(bundle)
        root = ContainerRoot(rootfs)
    except (ValueError, OSError) as exc:
        failed = Gathered()
        failed.unresolved = {path: f"not analysed: {exc}" for path in paths[:64]} or {"(the run)": str(exc)}
        failed.unresolved_total = max(len(paths), 1)
        return failed
    with root:
        if entry is not None:
            try:
                entry = resolve_program(root, entry)
            except NotAnalysable:
                entry = None  # not in the rootfs: the container could not have exec'd it
            if entry is not None and entry not in paths:
                paths.insert(0, entry)
        return gather(root, paths, cache_dir)


class StaticWorker:
    """Phase two, one run at a time, off the record path."""

    def __init__(self, store_of: Any, cache_dir: Path, log: Any) -> None:
        self.store_of, self.cache_dir, self.log = store_of, cache_dir, log
        self.jobs: queue.Queue[tuple[str, str, Any] | None] = queue.Queue()
        self.busy = 0
        self.held = 0  # bytes of content queued (each distinct content once)
        # sha256 -> [content, queued runs holding it]: many runs of one image exec the same programs, and their
        # content is held once until the last of them is analysed.
        self.shared: dict[str, list[Any]] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def after_record(self, profile: str, container_id: str, bundle: str, files: dict[str, list[str]] | None,
                     counters: dict[str, int] | None = None) -> None:
        """Phase one now (the rootfs goes away after the poststop), phase two queued. `counters`: the run's, whose
        path losses (a relative or too long path the tracer could not record) may hide an exec."""
        if not bundle:  # a watch from a client that names no bundle (older than the analysis): logged only
            self.log.warning("static analysis skipped: the watch named no bundle", profile=profile,
                             container_id=container_id)
            return
        started = time.monotonic()
        try:
            gathered = gather_run(bundle, files, self.cache_dir)
        except Exception as exc:  # a bug: it must never cost the tracer a recorded run; the profile says so
            from syscage.static_syscalls import Gathered

            self.log.exception("static analysis: could not read the run's programs", profile=profile,
                               container_id=container_id, error=str(exc))
            gathered = Gathered(unresolved={"(the run)": f"its programs could not be read: {exc}"},
                                unresolved_total=1)
        gathered.paths_lost = sum(int((counters or {}).get(name, 0)) for name in PATH_LOSSES)
        hashes = {path: hashlib.sha256(data).hexdigest() for path, data in gathered.pending.items()}
        with self.lock:
            new = sum(len(gathered.pending[p]) for p, h in hashes.items() if h not in self.shared)
            if self.held + new > MAX_QUEUED:
                for path in gathered.pending:
                    gathered.unresolved_total += 1
                    gathered.unresolved[path] = (f"not analysed: more than {MAX_QUEUED >> 20} MiB were waiting for "
                                                 "the analysis (a later run of it, or `syscage static`, adds it)")
                gathered.pending, gathered.held, hashes, new = {}, 0, {}, 0
            for path, digest in hashes.items():
                entry = self.shared.setdefault(digest, [gathered.pending[path], 0])
                entry[1] += 1
                gathered.pending[path] = entry[0]
            self.held += new
        self.log.info("static analysis queued", profile=profile, container_id=container_id,
                      programs=sorted(gathered.programs), to_analyse=sorted(gathered.pending),
                      unresolved=gathered.unresolved_total, read_seconds=round(time.monotonic() - started, 3))
        with self.lock:
            self.busy += 1
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="static-analysis", daemon=True)
                self.thread.start()
        self.jobs.put((profile, container_id, gathered, sorted(set(hashes.values()))))

    def idle(self) -> bool:
        with self.lock:
            return self.busy == 0

    def wait(self, timeout: float) -> bool:
        """Until the queued runs are analysed (the tracer is stopping); False when time ran out."""
        deadline = time.monotonic() + timeout
        while not self.idle():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            profile, container_id, gathered, digests = job
            try:
                started = time.monotonic()
                static = analyse_in_child(gathered, self.cache_dir)
                merged = self.store_of().merge_static(profile, static, container_id)
                self.log.info("static analysis merged", profile=profile, container_id=container_id,
                              syscalls=len(static["syscalls"]), profile_static=len(merged["static"]["syscalls"]),
                              unresolved=static["unresolved_total"], seconds=round(time.monotonic() - started, 3))
            except Exception as exc:  # a bug or a full disk: logged; the profile says the run is not analysed
                self.log.exception("static analysis failed", profile=profile, container_id=container_id,
                                   error=str(exc))
            finally:
                del gathered, job
                with self.lock:
                    self.busy -= 1
                    for digest in digests:
                        entry = self.shared[digest]
                        entry[1] -= 1
                        if entry[1] == 0:
                            self.held -= len(entry[0])
                            del self.shared[digest]


def analyse_in_child(gathered: Any, cache_dir: Path) -> dict[str, Any]:
    """analyse_gathered in a child process: its memory is returned to the system when it ends. The child reads
    the job (the tracer's own, pickled) on stdin and writes the static set back the same way."""
    child = subprocess.run([sys.executable, "-c", "from syscage.hooks.daemon.static_record import child_main; "
                            "child_main()"], input=pickle.dumps((gathered, cache_dir)), capture_output=True,
                           check=False)
    if child.returncode != 0 or not child.stdout:
        tail = child.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {child.returncode}"]
        raise RuntimeError(f"the analysis process failed: {tail[0]}")
    return pickle.loads(child.stdout)


def child_main() -> None:
    from syscage.static_syscalls import analyse_gathered

    gathered, cache_dir = pickle.load(sys.stdin.buffer)
    sys.stdout.buffer.write(pickle.dumps(analyse_gathered(gathered, cache_dir)))
