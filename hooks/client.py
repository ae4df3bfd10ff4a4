"""Talking to the tracer from a hook: connect, or start it and wait until it is attached."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import socket
import subprocess
import sys
import time
from typing import Any

from syscage.config import Config
from syscage.errors import SyscageError
from syscage.hooks.protocol import READY_FD_ENV, ProtocolError, receive, send


class TracerUnavailable(Exception):
    """No tracer answers on the socket."""


def request(config: Config, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """One request to a running tracer. Raises TracerUnavailable if none answers."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(config.tracer_socket))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise TracerUnavailable(str(exc)) from None
        send(sock, message)
        reply = receive(sock)
    except (ProtocolError, OSError) as exc:
        if isinstance(exc, TracerUnavailable):
            raise
        raise TracerUnavailable(f"tracer connection failed: {exc}") from None
    finally:
        sock.close()
    if reply.get("retry"):
        raise TracerUnavailable(reply.get("error", "tracer is shutting down"))
    return reply


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
    config.run_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    spawn_lock = os.open(config.run_dir / "spawn.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(spawn_lock, fcntl.LOCK_EX)  # one hook spawns; the others wait here, then connect
        with contextlib.suppress(TracerUnavailable):
            request(config, {"op": "status"}, timeout=5)
            return
        _spawn_and_wait(config, deadline)
    finally:
        os.close(spawn_lock)


def _spawn_and_wait(config: Config, deadline: float) -> None:
    read_fd, write_fd = os.pipe()
    env = {k: v for k, v in os.environ.items() if k in ("SYSCAGE_CONFIG", "PATH", "LANG")}
    env[READY_FD_ENV] = str(write_fd)
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    out = open(config.run_dir / "tracer.out", "ab")  # noqa: SIM115 - handed to the child
    try:
        # A new session and no inherited descriptors: the runtime waits for the hook's stdout and
        # stderr to close, so the long-lived tracer must hold none of them.
        subprocess.Popen([sys.executable, "-m", "syscage.hooks.tracer"], stdin=subprocess.DEVNULL, stdout=out,
                         stderr=out, pass_fds=(write_fd,), start_new_session=True, env=env, cwd="/")
    finally:
        out.close()
        os.close(write_fd)
    try:
        message = _read_ready(read_fd, deadline)
    finally:
        os.close(read_fd)
    if message.startswith("error"):
        raise SyscageError(f"tracer failed to start: {message[6:].strip()}",
                           f"see {config.run_dir / 'tracer.out'}")


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
