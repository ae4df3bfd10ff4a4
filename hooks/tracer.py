"""The syscage tracer daemon: one process, one BPF program, every learning container.

Started on demand by the first prestart hook (or by the shipped systemd unit). It compiles and
attaches the BPF program once, then serves watch/record requests on a unix socket. It moves itself
into a cgroup of its own so that tearing down the container or shim that started it cannot kill it,
and it detaches and exits after `idle_timeout` seconds with nothing to watch.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syscage.config import Config, load_config
from syscage.console import say_error
from syscage.errors import SyscageError
from syscage.hooks.liveness import LOCK_FILE
from syscage.hooks.protocol import READY_FD_ENV, ProtocolError, receive, send
from syscage.logs import setup_logging
from syscage.store import utc_now

OWN_CGROUP = "syscage"
JANITOR_PERIOD = 2.0


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
    vanished_at: float | None = None


class Tracer:
    def __init__(self, config: Config, log: Any, idle_timeout: float) -> None:
        from syscage.hooks.tracer_bpf import SyscallRecorder

        self.config = config
        self.log = log
        self.idle_timeout = idle_timeout
        self.instance = uuid.uuid4().hex[:12]
        self.lock = threading.Lock()
        self.watched: dict[str, Watched] = {}
        self.refused = 0
        self.runtime_versions: dict[tuple[str, int], str] = {}
        self.last_activity = time.monotonic()
        self.closing = False
        started = time.monotonic()
        self.recorder = SyscallRecorder(config.max_containers, config.max_threads)
        self.compile_seconds = round(time.monotonic() - started, 3)
        log.info("tracer attached", instance=self.instance, compile_seconds=self.compile_seconds)

    # -- requests -------------------------------------------------------------------------------

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        with self.lock:
            if self.closing:
                return {"ok": False, "retry": True, "error": "tracer is shutting down"}
            self.last_activity = time.monotonic()
            if op == "watch":
                return self._watch(request)
            if op == "status":
                return self._status()
            if op != "record":
                return {"ok": False, "error": f"unknown op {op!r}"}
            cid = request.get("container_id")
            watched = self.watched.pop(cid, None) if isinstance(cid, str) else None
            report = self._release(watched) if watched else None
        # The store write (with its fsyncs) happens outside the tracer's lock: other containers'
        # requests go on meanwhile, and the store's own per-profile lock keeps writers apart.
        return self._record(request, report)

    def _watch(self, req: dict[str, Any]) -> dict[str, Any]:
        from syscage.hooks.tracer_bpf import container_identity

        cid, pid, profile = req.get("container_id"), req.get("pid"), req.get("profile")
        if not isinstance(cid, str) or not isinstance(pid, int) or not isinstance(profile, str):
            return {"ok": False, "error": "watch needs container_id, pid and profile"}
        try:
            identity = container_identity(pid)
        except (OSError, LookupError) as exc:
            return {"ok": False, "error": f"cannot identify container {cid} (pid {pid}): {exc}"}
        if cid in self.watched:
            if self.watched[cid].cgroup_id == identity.cgroup_id:  # the same container's hook, run again
                return {"ok": True, "slot": self.watched[cid].slot, "instance": self.instance}
            # The same id for another container (another runtime root or containerd namespace).
            return {"ok": False, "error": f"a different container with id {cid} is already being learned; "
                                          "give containers distinct ids"}
        try:
            slot = self.recorder.add(identity.cgroup_id, identity.pidns_dev, identity.pidns_ino,
                                     exec_mode=bool(req.get("exec_mode")))
        except IndexError:
            self.refused += 1
            return {"ok": False, "error": f"tracer is already watching {len(self.watched)} containers "
                                          "(tracer.max_containers)"}
        except KeyError:
            return {"ok": False, "error": f"cgroup of {cid} is already watched for another container"}
        self.watched[cid] = Watched(cid, profile, slot, identity.cgroup_id, identity.cgroup_path,
                                    bool(req.get("exec_mode")),
                                    bool(req.get("no_new_privileges")), utc_now())
        self.log.info("watching", container_id=cid, profile=profile, mode=req.get("mode", "learn"), slot=slot,
                      cgroup_id=identity.cgroup_id, cutover="exec" if req.get("exec_mode") else "seccomp",
                      profile_defaulted=bool(req.get("profile_defaulted")), via=str(req.get("via", "hook")))
        return {"ok": True, "slot": slot, "instance": self.instance}

    def _record(self, req: dict[str, Any], report: dict[str, Any] | None) -> dict[str, Any]:
        """Merge what was seen of one container into its profile, durably, before replying."""
        from syscage.hooks.observe import observation_from_report, untraced_observation
        from syscage.store import ProfileStore

        cid, profile, mode = req.get("container_id"), req.get("profile"), req.get("mode", "learn")
        if not isinstance(cid, str) or not isinstance(profile, str):
            return {"ok": False, "error": "record needs container_id and profile"}
        runtime_name, runtime = self._runtime(req.get("runtime_exe"))
        if report is None:
            obs = untraced_observation(cid, runtime, f"tracer {self.instance} has no record of this container (it "
                                                    "was not watched: its prestart hook failed, or the tracer "
                                                    "restarted)")
        else:
            obs = observation_from_report(cid, report, runtime, runtime_name)
        log = self.log.bind(container_id=cid, profile=profile, mode=mode)
        try:
            merged = ProfileStore(self.config.store, self.config.seccomp_errno).record_run(profile, obs)
        except (SyscageError, OSError) as exc:
            log.error("could not record run", error=str(exc))
            return {"ok": False, "error": f"could not record the run in profile {profile}: {exc}"}
        log.info("run recorded", syscalls=len(obs.syscalls), cutover=obs.cutover, complete=obs.complete,
                 problems=obs.problems, counters=obs.counters, profile_syscalls=len(merged["syscalls"]),
                 runs=merged.get("runs_total", len(merged["runs"])))
        return {"ok": True, "complete": obs.complete, "problems": obs.problems, "syscalls": len(obs.syscalls),
                "cutover": obs.cutover, "profile_syscalls": len(merged["syscalls"]), "instance": self.instance}

    def _runtime(self, exe: object) -> tuple[str, str]:
        """(name, version line) of the runtime binary, cached by path and modification time."""
        from syscage.hooks.observe import runtime_version

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
                "compat": report.compat,
                "started": watched.started, "exec_mode": watched.exec_mode,
                "no_new_privileges": watched.no_new_privileges, "instance": self.instance}

    def _status(self) -> dict[str, Any]:
        return {"ok": True, "instance": self.instance, "pid": os.getpid(), "compile_seconds": self.compile_seconds,
                "watching": sorted(self.watched), "refused": self.refused, "rss_kb": _rss_kb(),
                "idle_timeout": self.idle_timeout}

    # -- housekeeping ---------------------------------------------------------------------------

    def janitor_step(self) -> bool:
        """Save runs whose poststop never came; return True when the tracer should exit (idle)."""
        with self.lock:
            now = time.monotonic()
            for watched in list(self.watched.values()):
                if watched.cgroup_path.exists():
                    continue
                watched.vanished_at = watched.vanished_at or now
                if now - watched.vanished_at > self.config.orphan_grace:
                    self._save_orphan(watched)
            if self.watched or self.idle_timeout <= 0:
                return False
            if now - self.last_activity < self.idle_timeout:
                return False
            self.closing = True
            return True

    def _save_orphan(self, watched: Watched) -> None:
        from syscage.hooks.observe import observation_from_report
        from syscage.store import ProfileStore

        del self.watched[watched.container_id]
        report = self._release(watched)
        obs = observation_from_report(watched.container_id, report, runtime="", runtime_name="")
        obs.problems.append("no poststop hook came for this container; saved by the tracer after its cgroup vanished")
        log = self.log.bind(container_id=watched.container_id, profile=watched.profile)
        try:
            ProfileStore(self.config.store, self.config.seccomp_errno).record_run(watched.profile, obs)
            log.warning("saved run without poststop")
        except (OSError, SyscageError) as exc:
            log.error("could not save orphaned run", error=str(exc))

    def close(self) -> None:
        self.recorder.close()


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
    from syscage.hooks.tracer_bpf import cgroup_mounts

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
    lock_fd = os.open(config.run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        _notify_ready("ready: another tracer is running")
        return 0
    move_to_own_cgroup(log)
    try:
        tracer = Tracer(config, log, idle_timeout)
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
    while not stop.wait(JANITOR_PERIOD):
        if tracer.janitor_step():
            log.info("tracer idle, detaching", idle_seconds=idle_timeout)
            break
    with tracer.lock:
        tracer.closing = True
    # Unlink before closing: a hook arriving now spawns a fresh tracer instead of talking to us.
    with contextlib.suppress(FileNotFoundError):
        sock_path.unlink()
    server.shutdown()
    server.server_close()
    with tracer.lock:
        if tracer.watched:
            log.warning("tracer exiting with containers still watched; their runs will be marked incomplete",
                        containers=sorted(tracer.watched))
    tracer.close()
    with contextlib.suppress(FileNotFoundError):
        (config.run_dir / "tracer.pid").unlink()
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
