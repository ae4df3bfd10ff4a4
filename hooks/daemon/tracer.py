"""The syscage tracer daemon: one process, one BPF program, every learning container.

Started on demand by the first prestart hook (or by the shipped systemd unit). It compiles and
attaches the BPF program once, then serves watch/record requests on a unix socket. It moves itself
into a cgroup of its own so that tearing down the container or shim that started it cannot kill it,
and it detaches and exits after `idle_timeout` seconds with nothing to watch.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syscage.config import Config, load_config
from syscage.console import say_error
from syscage.errors import SyscageError
from syscage.liveness import INSTANCE_FILE, LOCK_FILE
from syscage.locks import open_locked
from syscage.logs import setup_logging
from syscage.protocol import READY_FD_ENV, ProtocolError, Record, Release, Watch, receive, send
from syscage.store import utc_now

if TYPE_CHECKING:
    from syscage.store import ProfileStore

OWN_CGROUP = "syscage"
CHECKPOINT = "checkpoint"  # op: merge what watched containers did so far into their profiles (syscage snapshot)
JANITOR_PERIOD = 2.0
STATIC_WAIT = 5.0  # a stopping tracer waits this long for the static analysis (then it is cut short: show says so)
MARKER_SWEEP_PERIOD = 30.0


@dataclass
class Watched:
    container_id: str
    profile: str
    slot: int
    cgroup_id: int
    cgroup_path: Path
    exec_mode: bool
    no_new_privileges: bool
    started: str
    key: str = ""  # see syscage.protocol.watch_key: a record must name it to take this watch's run
    pending: str | None = None  # the id of its pending run in the store
    vanished_at: float | None = None
    bundle: str = ""  # where the static analysis finds the rootfs (hooks.daemon.static_record)


# The requests that name a container, by op (status takes no argument).
REQUESTS: dict[str, type[Watch] | type[Record] | type[Release]] = {
    Watch.OP: Watch, Record.OP: Record, Release.OP: Release}

# What a stale watch's run says when it is saved without its container's record.
REUSED = ("its container is gone and another container now uses the id {cid} (deleted without syscage, e.g. "
          "a plain `runc delete`): saved by the tracer with what it saw")
STOPPED = ("the tracer stopped (syscage tracer stop, SIGTERM) while the container was watched: what it saw until "
           "then is kept, the rest of the run is missing")
ORPHANED = "no poststop hook came for this container; saved by the tracer after its cgroup vanished"


def namespace_of(profile: str) -> str | None:
    """The Kubernetes namespace a profile belongs to (k8s.<namespace>.<container>), or None."""
    parts = profile.split(".", 2)
    return parts[1] if len(parts) == 3 and parts[0] == "k8s" and parts[1] else None


def cgroup_alive(watched: Watched) -> bool:
    """Is the watched container's cgroup still there? The directory may be there again for a new container
    of the same id (runc names it after the id): the inode is the cgroup id, and a new cgroup gets a new one."""
    try:
        return os.stat(watched.cgroup_path).st_ino == watched.cgroup_id
    except OSError:
        return False


class Tracer:
    def __init__(self, config: Config, log: Any, idle_timeout: float, instance: str | None = None,
                 recorder: Any = None, identify: Callable[[int], Any] | None = None) -> None:
        """recorder and identify stand in for the BPF recorder and tracer_bpf.container_identity in tests."""
        self.config = config
        self.log = log
        self.idle_timeout = idle_timeout
        self.instance = instance or new_instance()
        self.lock = threading.Lock()
        self.watched: dict[str, Watched] = {}
        self.refused = 0
        self.refused_by_namespace: dict[str, int] = {}
        self.runtime_versions: dict[tuple[str, int], str] = {}
        self.last_activity = time.monotonic()
        self.closing = False
        self.sequence = itertools.count(1)
        self.next_sweep = 0.0
        if identify is None:
            from syscage.hooks.daemon.tracer_bpf import container_identity as identify
        self.identify = identify
        started = time.monotonic()
        if recorder is None:
            from syscage.hooks.daemon.tracer_bpf import SyscallRecorder

            recorder = SyscallRecorder(config.max_containers, config.max_threads)
        self.recorder = recorder
        self.compile_seconds = round(time.monotonic() - started, 3)
        from syscage.hooks.daemon.static_record import STATIC_CACHE, StaticWorker

        self.static = StaticWorker(lambda: self.store, config.store / STATIC_CACHE, log)
        log.info("tracer attached", instance=self.instance, compile_seconds=self.compile_seconds)

    @property
    def store(self) -> ProfileStore:
        from syscage.store import ProfileStore

        return ProfileStore.from_config(self.config)

    # -- requests -------------------------------------------------------------------------------

    def handle(self, doc: dict[str, Any]) -> dict[str, Any]:
        op = doc.get("op")
        request: Watch | Record | Release | None = None
        try:
            if op in REQUESTS:
                request = REQUESTS[op].parse(doc)
        except ProtocolError as exc:
            return {"ok": False, "error": str(exc)}
        stale: list[tuple[Watched, dict[str, Any]]] = []
        new: Watched | None = None
        taken: tuple[Watched, dict[str, Any]] | None = None
        with self.lock:
            if self.closing:
                return {"ok": False, "retry": True, "error": "tracer is shutting down"}
            self.last_activity = time.monotonic()
            if op == "status":
                return self._status()
            due: list[tuple[Watched, dict[str, Any]]] = []
            if op == CHECKPOINT:
                due = self._due_checkpoints(doc.get("profile"))
            elif request is None:
                return {"ok": False, "error": f"unknown op {op!r}"}
            elif isinstance(request, Watch):
                reply, new = self._watch(request, stale)
            else:
                taken = self._take(request, stale)
        if op == CHECKPOINT:
            return self._checkpoint(due)
        # Store writes (with their fsyncs) happen outside the tracer's lock: other containers' requests go
        # on meanwhile, and the store's own per-profile lock keeps writers apart.
        for watched, report in stale:
            self._save(watched, report, REUSED.format(cid=watched.container_id))
        if isinstance(request, Watch):
            return self._note_pending(reply, new)
        if isinstance(request, Release):
            return self._drop(taken)
        return self._record(request, taken)

    def _watch(self, req: Watch, stale: list[tuple[Watched, dict[str, Any]]]
               ) -> tuple[dict[str, Any], Watched | None]:
        cid, pid, profile, key = req.container_id, req.pid, req.profile, req.key
        try:
            identity = self.identify(pid)
        except (OSError, LookupError) as exc:
            return {"ok": False, "error": f"cannot identify container {cid} (pid {pid}): {exc}"}, None
        old = self.watched.get(cid)
        if old is not None:
            if old.key == key and old.cgroup_id == identity.cgroup_id:  # the same container's hook, run again
                return {"ok": True, "slot": old.slot, "instance": self.instance}, None
            if cgroup_alive(old):  # the same id for another live container (another runtime root or namespace)
                return {"ok": False, "error": f"a different container with id {cid} is already being learned; "
                                              "give containers distinct ids"}, None
            # The id's earlier container is gone without its run being recorded: save that run now, into
            # its own profile, and watch the new one.
            del self.watched[cid]
            stale.append((old, self._release(old)))
        namespace = namespace_of(profile)
        if namespace is not None:
            taken = sum(1 for w in self.watched.values() if namespace_of(w.profile) == namespace)
            if taken >= self.config.namespace_share:
                self.refused += 1
                self.refused_by_namespace[namespace] = self.refused_by_namespace.get(namespace, 0) + 1
                return {"ok": False, "error": f"namespace {namespace} already has {taken} containers learning "
                                              "(tracer.max_containers_per_namespace)"}, None
        try:
            slot = self.recorder.add(identity.cgroup_id, identity.pidns_dev, identity.pidns_ino,
                                     exec_mode=req.exec_mode)
        except IndexError:
            self.refused += 1
            return {"ok": False, "error": f"tracer is already watching {len(self.watched)} containers "
                                          "(tracer.max_containers)"}, None
        except KeyError:
            return {"ok": False, "error": f"cgroup of {cid} is already watched for another container"}, None
        watched = Watched(cid, profile, slot, identity.cgroup_id, identity.cgroup_path, req.exec_mode,
                          req.no_new_privileges, utc_now(), key, bundle=req.bundle)
        self.watched[cid] = watched
        self.log.info("watching", container_id=cid, profile=profile, mode=req.mode, slot=slot,
                      cgroup_id=identity.cgroup_id, cutover="exec" if req.exec_mode else "seccomp",
                      profile_defaulted=req.profile_defaulted, via=req.via)
        return {"ok": True, "slot": slot, "instance": self.instance}, watched

    def _note_pending(self, reply: dict[str, Any], watched: Watched | None) -> dict[str, Any]:
        """The watch leaves its durable trace (a pending run) before the container is let go; a watch that
        cannot leave one is undone: a run the store cannot note could be lost without a word."""
        if watched is None:
            return reply
        pending = f"{self.instance}-{watched.slot}-{next(self.sequence)}"
        doc = {"id": pending, "instance": self.instance, "container_id": watched.container_id, "key": watched.key,
               "profile": watched.profile, "started": watched.started, "tracer_pid": os.getpid()}
        try:
            self.store.add_pending(watched.profile, doc)
        except (OSError, SyscageError) as exc:
            with self.lock:
                if self.watched.get(watched.container_id) is watched:
                    del self.watched[watched.container_id]
                    self._release(watched)
            self.log.error("cannot note the pending run", container_id=watched.container_id,
                           profile=watched.profile, error=str(exc))
            return {"ok": False, "error": f"cannot write the pending run of {watched.container_id} into profile "
                                          f"{watched.profile}: {exc}"}
        with self.lock:
            watched.pending = pending
            ended = self.watched.get(watched.container_id) is not watched
        if ended:  # stopped meanwhile (its run was saved without this record): the record must go too
            with contextlib.suppress(OSError, SyscageError):
                self.store.drop_pending(watched.profile, pending)
        return reply

    def _take(self, req: Record | Release, stale: list[tuple[Watched, dict[str, Any]]]
              ) -> tuple[Watched, dict[str, Any]] | None:
        """The watch a record (or release) names, released, if it is that container's: same id, key and
        profile. Never another container's: a watch of the same id whose cgroup is gone is a stale one,
        saved into its own profile."""
        cid, key, profile = req.container_id, req.key, req.profile
        watched = self.watched.get(cid)
        if watched is None:
            return None
        if key and watched.key == key and (profile is None or watched.profile == profile):
            del self.watched[watched.container_id]
            return watched, self._release(watched)
        if not cgroup_alive(watched):
            del self.watched[watched.container_id]
            stale.append((watched, self._release(watched)))
        return None

    def _drop(self, taken: tuple[Watched, dict[str, Any]] | None) -> dict[str, Any]:
        """A create that failed after its prestart: no container, no run; its watch and pending run go."""
        if taken is None:
            return {"ok": True, "released": False}
        watched = taken[0]
        if watched.pending:
            try:
                self.store.drop_pending(watched.profile, watched.pending)
            except (OSError, SyscageError) as exc:
                self.log.error("could not drop the pending run", container_id=watched.container_id, error=str(exc))
                return {"ok": False, "error": f"could not drop the pending run of {watched.container_id}: {exc}"}
        self.log.info("watch released: the container was never created", container_id=watched.container_id,
                      profile=watched.profile)
        return {"ok": True, "released": True}

    def _record(self, req: Record, taken: tuple[Watched, dict[str, Any]] | None) -> dict[str, Any]:
        """Merge what was seen of one container into its profile, durably, before replying."""
        from syscage.hooks.daemon.observe import observation_from_report, untraced_observation

        cid, profile, mode = req.container_id, req.profile, req.mode
        runtime_name, runtime = self._runtime(req.runtime_exe)
        watched = taken[0] if taken else None
        key = watched.key if watched else req.key
        if watched is None and self.store.run_recorded(profile, cid, key):
            # Saved already (the tracer that watched it stopped, or its cgroup vanished first): once only.
            return {"ok": True, "complete": False, "syscalls": 0, "cutover": "none", "instance": self.instance,
                    "problems": ["its run was saved already, as incomplete, when its watch ended without it"]}
        if taken is None:
            with self.lock:
                other = cid in self.watched
            why = (f"the tracer's watch of id {cid} is another container's (the id was reused), so this one was not "
                   "traced" if other else
                   f"tracer {self.instance} has no record of this container (it was not watched: its prestart hook "
                   "failed, or the tracer restarted)")
            obs = untraced_observation(cid, runtime, why)
        else:
            obs = observation_from_report(cid, taken[1], runtime, runtime_name, self.config.max_argument_values)
        log = self.log.bind(container_id=cid, profile=profile, mode=mode)
        pending = watched.pending if watched else None
        try:
            # Without its watch, the record settles the container's run a tracer before us left pending; if
            # that tracer's successor (us, at start) has saved it already, nothing more is written.
            lost = None if watched else self.store.lost_run_of(profile, cid, key, self.instance)
            pending = watched.pending if watched else str(lost["id"]) if lost else None
            merged = self.store.record_run(profile, obs, pending=pending, settling=lost is not None, key=key)
        except (SyscageError, OSError) as exc:
            log.error("could not record run", error=str(exc))
            self._keep_lost(profile, cid, key, obs.started, pending, str(exc))
            return {"ok": False, "error": f"could not record the run in profile {profile}: {exc}"}
        if merged is None:
            problems = ["its run was saved already, as incomplete, by the tracer that found it lost"]
            return {"ok": True, "complete": False, "problems": problems, "syscalls": 0, "cutover": "none",
                    "instance": self.instance}
        log.info("run recorded", syscalls=len(obs.syscalls), cutover=obs.cutover, complete=obs.complete,
                 problems=obs.problems, counters=obs.counters, profile_syscalls=len(merged["syscalls"]),
                 runs=merged.get("runs_total", len(merged["runs"])))
        # Runs of this profile whose recording failed earlier (a full disk) are saved now that a write works.
        self._settle(profile)
        if watched is not None and obs.cutover != "none":  # the run is durable: now what its programs can do
            self.static.after_record(profile, cid, watched.bundle, obs.files, obs.counters)
        return {"ok": True, "complete": obs.complete, "problems": obs.problems, "syscalls": len(obs.syscalls),
                "cutover": obs.cutover, "profile_syscalls": len(merged["syscalls"]), "instance": self.instance}

    def _keep_lost(self, profile: str, cid: str, key: str, started: str, pending: str | None, error: str) -> None:
        """Recording failed: its pending run now counts as lost (the profile is incomplete) until a later write
        settles it; a run with no pending record (or one that cannot be marked) is noted in the run directory."""
        if pending:
            try:
                self.store.fail_pending(profile, pending)
                return
            except (OSError, SyscageError) as exc:
                self.log.error("could not mark the pending run as failed", container_id=cid, profile=profile,
                               error=str(exc))
        doc = {"container_id": cid, "key": key, "profile": profile, "started": started, "error": error,
               "instance": self.instance}
        if self.store.note_unrecorded(profile, doc) is None:
            self.log.error("run lost: neither the store nor the run directory can take it", container_id=cid,
                           profile=profile)

    def _runtime(self, exe: object) -> tuple[str, str]:
        """(name, version line) of the runtime binary, cached by path and modification time."""
        from syscage.hooks.daemon.observe import runtime_version

        if not isinstance(exe, str) or not exe.startswith("/"):
            return "", ""
        try:
            stamp = os.stat(exe).st_mtime_ns
        except OSError:
            return Path(exe).name, ""
        key = (exe, stamp)
        if key not in self.runtime_versions:
            self.runtime_versions[key] = runtime_version(exe)
        return Path(exe).name, self.runtime_versions[key]

    def _release(self, watched: Watched) -> dict[str, Any]:
        report = self.recorder.collect(watched.slot)
        self.recorder.remove(watched.cgroup_id, watched.slot)
        return {"syscalls": report.syscalls, "pre_exec": report.pre_exec, "counters": report.counters,
                "compat": report.compat, "files": {os.fsdecode(p): a for p, a in report.files.items()},
                "sockets": report.sockets, "capabilities": report.capabilities,
                "capabilities_traced": report.capabilities_traced,
                "arguments": {name: {"values": values, "overflow": over}
                              for name, (values, over) in report.arguments.items()},
                "started": watched.started, "exec_mode": watched.exec_mode,
                "no_new_privileges": watched.no_new_privileges, "instance": self.instance}

    # -- checkpoints (syscage.checkpoint) --------------------------------------------------------

    def _due_checkpoints(self, profile: object) -> list[tuple[Watched, dict[str, Any]]]:
        """What the watched containers (of `profile`, or all) did so far; the caller holds the lock. Reading a
        slot leaves it as it is: the container goes on learning."""
        return [(w, self._report(w)) for w in self.watched.values() if profile is None or w.profile == profile]

    def _checkpoint(self, due: list[tuple[Watched, dict[str, Any]]]) -> dict[str, Any]:
        """Merge each container's observations so far into its profile as a run in progress."""
        from syscage.hooks.daemon.observe import observation_from_report

        done, failed = [], []
        for watched, report in due:
            counters = report.get("counters", {})
            if not (counters.get("cutover_seccomp") or counters.get("cutover_exec")):
                continue  # nothing of the workload recorded yet
            obs = observation_from_report(watched.container_id, report, runtime="", runtime_name="")
            try:
                self.store.checkpoint_run(watched.profile, obs, watched.pending, watched.key)
                done.append(watched.container_id)
            except (OSError, SyscageError) as exc:
                failed.append(watched.container_id)
                self.log.error("could not checkpoint", container_id=watched.container_id, profile=watched.profile,
                               error=str(exc))
        if done:
            self.log.info("checkpointed learning containers", containers=done)
        return {"ok": not failed, "checkpointed": done, "failed": failed, "instance": self.instance}

    def checkpoint_all(self) -> dict[str, Any]:
        with self.lock:
            if self.closing:
                return {"ok": False, "checkpointed": []}
            due = self._due_checkpoints(None)
        return self._checkpoint(due)

    def _report(self, watched: Watched) -> dict[str, Any]:
        report = self.recorder.collect(watched.slot)
        return {"syscalls": report.syscalls, "pre_exec": report.pre_exec, "counters": report.counters,
                "compat": report.compat, "started": watched.started, "exec_mode": watched.exec_mode,
                "no_new_privileges": watched.no_new_privileges, "instance": self.instance}

    def _status(self) -> dict[str, Any]:
        return {"ok": True, "instance": self.instance, "pid": os.getpid(), "compile_seconds": self.compile_seconds,
                "watching": sorted(self.watched), "refused": self.refused,
                "refused_by_namespace": dict(self.refused_by_namespace), "rss_kb": _rss_kb(),
                "idle_timeout": self.idle_timeout}

    # -- housekeeping ---------------------------------------------------------------------------

    def janitor_step(self) -> bool:
        """Save runs whose poststop never came; return True when the tracer should exit (idle)."""
        orphans = []
        with self.lock:
            now = time.monotonic()
            for watched in list(self.watched.values()):
                if cgroup_alive(watched):
                    continue
                watched.vanished_at = watched.vanished_at or now
                if now - watched.vanished_at > self.config.orphan_grace:
                    del self.watched[watched.container_id]
                    orphans.append((watched, self._release(watched)))
            idle = (not self.watched and self.idle_timeout > 0 and now - self.last_activity >= self.idle_timeout
                    and self.static.idle())
            if idle and not orphans:
                self.closing = True
        for watched, report in orphans:
            self._save(watched, report, ORPHANED)
        if now >= self.next_sweep:  # markers of containers deleted with plain runc after their run was saved
            self.next_sweep = now + MARKER_SWEEP_PERIOD
            self.sweep_markers()
        return idle and not orphans

    def stop(self) -> None:
        """Refuse new requests, and save every container still watched as an incomplete run."""
        with self.lock:
            self.closing = True
            left = [(w, self._release(w)) for w in self.watched.values()]
            self.watched.clear()
        for watched, report in left:
            self._save(watched, report, STOPPED)
        if not self.static.wait(STATIC_WAIT):
            self.log.warning("tracer stopping before the static analysis of recorded runs ended: they stay "
                             "unanalysed (syscage show says so)")

    def _save(self, watched: Watched, report: dict[str, Any], problem: str) -> None:
        """Record a watched container's run, as incomplete, without its record request."""
        from syscage.hooks.daemon.observe import observation_from_report

        obs = observation_from_report(watched.container_id, report, runtime="", runtime_name="",
                                      max_argument_values=self.config.max_argument_values)
        obs.problems.append(problem)
        log = self.log.bind(container_id=watched.container_id, profile=watched.profile)
        try:
            self.store.record_run(watched.profile, obs, pending=watched.pending, key=watched.key)
            log.warning("saved an incomplete run", problem=problem)
        except (OSError, SyscageError) as exc:
            log.error("could not save the run", problem=problem, error=str(exc))
            self._keep_lost(watched.profile, watched.container_id, watched.key, watched.started, watched.pending,
                            str(exc))
            return
        self.sweep_markers()

    def settle_lost(self) -> int:
        """At start: every pending run of another instance (which stopped or crashed: we hold the lock now)
        becomes an incomplete run in its profile. Returns how many were settled."""
        settled = sum(self._settle(name) for name in self.store.names())
        self.sweep_markers()
        return settled

    def _settle(self, name: str) -> int:
        """Save the profile's lost pending runs (another instance's, or ours whose recording failed) as
        incomplete runs; how many were saved."""
        from syscage.hooks.daemon.observe import untraced_observation
        from syscage.store import describe_lost

        store, settled = self.store, 0
        try:
            lost = [p for p in store.pending(name) if p["failed"] or p.get("instance") != self.instance]
        except (OSError, SyscageError):
            return 0
        for pending in lost:
            cid = str(pending.get("container_id") or "?")
            obs = untraced_observation(cid, "", f"its run was never recorded: {describe_lost(pending)}")
            obs.started = str(pending.get("started") or "")
            try:
                if store.record_run(name, obs, pending=str(pending["id"]), settling=True,
                                    key=str(pending.get("key") or "")) is not None:
                    settled += 1
                    self.log.warning("lost run saved as incomplete", container_id=cid, profile=name,
                                     problems=obs.problems)
            except (OSError, SyscageError) as exc:
                self.log.error("could not save a lost run", container_id=cid, profile=name, error=str(exc))
        return settled

    def sweep_markers(self) -> int:
        """Remove the learning markers (syscage.markers) of containers that are gone and whose run is
        in their profile: deleted with plain `runc delete`, nobody else ever would. A marker whose run is not
        recorded yet stays (its create may still be under way, or its delete will record it)."""
        import json

        from syscage.markers import LEARNING_DIR, container_exists
        from syscage.protocol import watch_key

        removed = 0
        base = self.config.run_dir / LEARNING_DIR
        try:
            roots = [d for d in base.iterdir() if d.is_dir()]
        except OSError:
            return 0
        for root in roots:
            for marker in root.iterdir():
                if ".claimed." in marker.name:
                    continue  # a delete is recording it right now
                try:
                    doc = json.loads(marker.read_bytes())
                    cid, profile = str(doc["container_id"]), str(doc["profile"])
                    key = watch_key(doc.get("nonce"), "")
                    gone = container_exists(str(self.config.runtime_path), doc.get("runtime_root") or None,
                                            cid) is False
                    if cid == marker.name and gone and self.store.run_recorded(profile, cid, key):
                        marker.unlink()
                        removed += 1
                except (OSError, ValueError, KeyError, TypeError, SyscageError):
                    continue
        return removed

    def close(self) -> None:
        self.recorder.close()


def new_instance() -> str:
    return uuid.uuid4().hex[:12]


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    tracer: Tracer


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(30)
        tracer: Tracer = self.server.tracer  # type: ignore[attr-defined]
        # Only root (or the tracer's own user) may steer the tracer.
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        try:
            request = receive(sock)
            if uid not in (0, os.getuid()):
                reply = {"ok": False, "error": "permission denied"}
            else:
                reply = tracer.handle(request)
            send(sock, reply)
        except (ProtocolError, OSError) as exc:
            tracer.log.warning("bad client request", error=str(exc))
        except Exception as exc:  # a bug must not kill the tracer that every learner relies on
            tracer.log.exception("request failed", error=str(exc))
            with contextlib.suppress(OSError):
                send(sock, {"ok": False, "error": f"tracer internal error: {exc}"})


def move_to_own_cgroup(log: Any) -> None:
    """Leave the cgroups of whoever started us (a container's shim, runc) for /<hierarchy>/syscage."""
    from syscage.hooks.daemon.tracer_bpf import cgroup_mounts

    for mount in cgroup_mounts():
        target = mount / OWN_CGROUP
        try:
            target.mkdir(exist_ok=True)
            # A new v1 cpuset cgroup starts with no CPUs and no memory nodes: it takes no task until
            # it inherits its parent's.
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if (target / knob).exists() and not (target / knob).read_text().strip():
                    (target / knob).write_text((mount / knob).read_text())
            (target / "cgroup.procs").write_text(str(os.getpid()))
        except OSError as exc:
            log.warning("could not move tracer into its own cgroup", hierarchy=str(mount), error=str(exc))


def _notify_ready(message: str) -> None:
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd is None:
        return
    with contextlib.suppress(OSError, ValueError):
        os.write(int(fd), message.encode()[:4000])
        os.close(int(fd))


def serve(config: Config, idle_timeout: float) -> int:
    log = setup_logging(config, "tracer")
    config.run_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    # Held until we exit (the descriptor is never closed): what liveness.tracer_lock_held() asks.
    if open_locked(config.run_dir / LOCK_FILE, blocking=False) is None:
        _notify_ready("ready: another tracer is running")
        return 0
    # Whoever sees the lock held reads this to tell pending runs learning now from lost ones.
    instance = new_instance()
    from syscage.atomic import write_atomically

    write_atomically(config.run_dir / INSTANCE_FILE, f"{instance}\n".encode(), 0o644, durable=False)
    move_to_own_cgroup(log)
    try:
        tracer = Tracer(config, log, idle_timeout, instance)
    except Exception as exc:
        log.exception("tracer failed to start", error=str(exc))
        _notify_ready(f"error: BPF program failed to load: {exc}")
        return 1
    sock_path = config.tracer_socket
    with contextlib.suppress(FileNotFoundError):
        sock_path.unlink()
    old_umask = os.umask(0o077)
    try:
        server = _Server(str(sock_path), _Handler)
    except OSError as exc:
        log.error("tracer cannot listen", socket=str(sock_path), error=str(exc))
        _notify_ready(f"error: cannot listen on {sock_path}: {exc}")
        tracer.close()
        return 1
    finally:
        os.umask(old_umask)
    server.tracer = tracer  # type: ignore[attr-defined]
    (config.run_dir / "tracer.pid").write_text(f"{os.getpid()}\n")
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("tracer stopping on signal", signal=signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()
    _notify_ready("ready")
    tracer.settle_lost()
    next_checkpoint = time.monotonic() + config.checkpoint_interval
    while not stop.wait(JANITOR_PERIOD):
        if tracer.janitor_step():
            log.info("tracer idle, detaching", idle_seconds=idle_timeout)
            break
        if time.monotonic() >= next_checkpoint:  # tracer.checkpoint_interval: a crash loses at most this much
            next_checkpoint = time.monotonic() + config.checkpoint_interval
            tracer.checkpoint_all()
    with tracer.lock:
        tracer.closing = True
        if tracer.watched:
            log.warning("tracer exiting with containers still watched; their runs are saved as incomplete",
                        containers=sorted(tracer.watched))
    # Unlink before closing: a hook arriving now spawns a fresh tracer instead of talking to us (it starts
    # once we let go of the lock, after the runs below are saved).
    with contextlib.suppress(FileNotFoundError):
        sock_path.unlink()
    server.shutdown()
    server.server_close()
    tracer.stop()
    tracer.close()
    for name in ("tracer.pid", INSTANCE_FILE):
        with contextlib.suppress(FileNotFoundError):
            (config.run_dir / name).unlink()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="syscage-tracer",
        description="The syscage eBPF tracer. Prestart hooks start it on demand; run it yourself (for example "
                    "from the shipped systemd unit) to pay the BPF compile once at boot.")
    parser.add_argument("--idle-timeout", type=float, default=None,
                        help="seconds with no watched container before detaching and exiting; 0 = never "
                             "(default: tracer.idle_timeout from the config)")
    args = parser.parse_args(argv)
    try:
        config = load_config()
    except SyscageError as exc:
        say_error(str(exc))
        _notify_ready(f"error: {exc}")
        return 2
    if os.geteuid() != 0:
        say_error("the tracer needs root (it loads BPF programs); run it as root")
        _notify_ready("error: the tracer needs root")
        return 2
    idle = config.idle_timeout if args.idle_timeout is None else args.idle_timeout
    return serve(config, idle)


if __name__ == "__main__":
    sys.exit(main())
