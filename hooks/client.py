"""Talking to the tracer from a hook: connect, or start it and wait until it is attached."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from syscage.errors import SyscageError
from syscage.hooks.liveness import tracer_lock_held
from syscage.hooks.protocol import READY_FD_ENV, TracerLost, TracerUnavailable, call

if TYPE_CHECKING:
    from syscage.config import Config

__all__ = ["TracerLost", "TracerUnavailable", "request", "request_starting_tracer", "start_tracer",
           "start_tracer_in_background"]


def request(config: Config, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """One request to a running tracer. Raises TracerUnavailable if none answers."""
    return call(str(config.tracer_socket), message, timeout)


def tracer_pid(config: Config) -> int | None:
    """The pid of the process listening on the tracer's socket, as the kernel gives it in *our* PID namespace
    (SO_PEERCRED): the pid a tracer reports of itself is its own namespace's. None if none answers."""
    import socket
    import struct

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(5)
        sock.connect(str(config.tracer_socket))
        pid, _, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    except OSError:
        return None
    finally:
        sock.close()
    return pid or None  # 0: the listener is in a PID namespace we cannot see into


def request_starting_tracer(config: Config, message: dict[str, Any]) -> dict[str, Any]:
    """Send `message`, starting the tracer first if none runs; waits for the BPF compile if needed."""
    deadline = time.monotonic() + config.start_timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            return request(config, message)
        except TracerUnavailable as exc:
            last_error = str(exc)
        try:
            start_tracer(config, deadline)
        except OSError as exc:
            raise SyscageError(f"cannot start the tracer: {exc}", f"check paths.run_dir ({config.run_dir})") from None
    raise SyscageError(f"tracer did not answer within {config.start_timeout:g}s ({last_error})",
                       f"see {config.log_file} and {config.run_dir / 'tracer.out'}")


def start_tracer(config: Config, deadline: float) -> None:
    """Start a tracer unless one is starting or running; return when it is ready (or has failed)."""
    with _spawn_lock(config):  # one caller spawns; the others wait here, then connect
        if _tracer_answers(config):
            return
        if tracer_lock_held(config.run_dir):  # started (by the wrapper or a peer) and still compiling
            _wait_for_socket(config, deadline)
            return
        read_fd, write_fd = os.pipe()
        try:
            _spawn_detached(config, write_fd)
        finally:
            os.close(write_fd)
        try:
            message = _read_ready(read_fd, deadline)
        finally:
            os.close(read_fd)
    if message.startswith("error"):
        raise SyscageError(f"tracer failed to start: {message[6:].strip()}",
                           f"see {config.run_dir / 'tracer.out'}")


def start_tracer_in_background(config: Config) -> None:
    """Start a tracer, if none runs, without waiting for its BPF compile.

    syscage-runtime calls this before it execs the runtime for a learning container: the compile
    overlaps with the runtime's container set-up, and the tracer is not a descendant of the runtime
    (`crun run` waits for every descendant to exit before it returns).
    """
    try:
        with _spawn_lock(config):
            if not tracer_lock_held(config.run_dir) and not _tracer_answers(config):
                _spawn_detached(config, None)
    except OSError:
        pass  # the prestart hook tries again, and reports what fails


@contextlib.contextmanager
def _spawn_lock(config: Config) -> Iterator[None]:
    config.run_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    fd = os.open(config.run_dir / "spawn.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _tracer_answers(config: Config) -> bool:
    try:
        request(config, {"op": "status"}, timeout=5)
    except TracerUnavailable:
        return False
    return True


def _wait_for_socket(config: Config, deadline: float) -> None:
    while time.monotonic() < deadline:
        if _tracer_answers(config):
            return
        if not tracer_lock_held(config.run_dir):
            return  # it died while starting: the caller's retry loop spawns a new one
        time.sleep(0.02)


def _spawn_detached(config: Config, ready_fd: int | None) -> None:
    """Start the tracer as an orphan in a session of its own (fork, spawn, exit), holding none of our
    descriptors: a runtime waits for a hook's stdout and stderr to close."""
    env = {k: v for k, v in os.environ.items() if k in ("SYSCAGE_CONFIG", "PATH", "LANG")}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if ready_fd is not None:
        env[READY_FD_ENV] = str(ready_fd)
    out = os.open(config.run_dir / "tracer.out", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        child = os.fork()
        if child == 0:  # the intermediate: start the tracer, then leave it to be adopted
            try:
                import subprocess  # here only: it costs every hook ~4 ms of imports

                subprocess.Popen([sys.executable, "-m", "syscage.hooks.tracer"], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=out, pass_fds=() if ready_fd is None else (ready_fd,),
                                 start_new_session=True, env=env, cwd="/")
            finally:
                os._exit(0)
        os.waitpid(child, 0)
    finally:
        os.close(out)


def _read_ready(fd: int, deadline: float) -> str:
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "".join(chunks)
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:  # closed: either after "ready", or the tracer died
            return "".join(chunks) or "error: the tracer exited during start-up"
        chunks.append(chunk.decode(errors="replace"))
