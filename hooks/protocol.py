"""The tracer's wire protocol: one JSON object per line over a unix stream socket, one reply per request."""

from __future__ import annotations

import json
import socket

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms) on the hook's fast path
if TYPE_CHECKING:
    from typing import Any

MAX_MESSAGE = 1 << 20
# The spawner passes a pipe in this variable; the tracer writes "ready" or "error: ..." to it.
READY_FD_ENV = "SYSCAGE_TRACER_READY_FD"


def watch_key(nonce: object, bundle: object) -> str:
    """What, besides its id, ties a watch to one container (ids are reused: a container deleted with plain
    `runc delete`, then created again). syscage-runtime gives every learning create or run a nonce (in its
    learning marker, relay and hook arguments); a hook with no wrapper behind it (hooks.d) has the bundle
    path, which the runtime's state carries at prestart and poststop alike."""
    if isinstance(nonce, str) and nonce:
        return f"nonce:{nonce}"
    return f"bundle:{bundle}" if isinstance(bundle, str) and bundle else ""


class ProtocolError(Exception):
    pass


class TracerUnavailable(Exception):
    """No tracer answers on the socket."""


class TracerLost(TracerUnavailable):
    """The tracer took the request but gave no answer: it may or may not have acted on it."""


def call(socket_path: str, message: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One request to a running tracer and its reply. Raises TracerUnavailable if none answers (nothing was
    sent), TracerLost if the request went out but no reply came back."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    sock.settimeout(timeout)
    try:
        sock.connect(socket_path)
    except OSError as exc:  # no socket, refused, or a run directory that is not one
        sock.close()
        raise TracerUnavailable(f"tracer connection failed: {exc}") from None
    try:
        send(sock, message)
        reply = receive(sock)
    except (ProtocolError, OSError) as exc:
        raise TracerLost(f"the tracer gave no answer: {exc}") from None
    finally:
        sock.close()
    if reply.get("retry"):
        raise TracerUnavailable(reply.get("error", "tracer is shutting down"))
    return reply


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message, separators=(",", ":")).encode() + b"\n")


def receive(sock: socket.socket) -> dict[str, Any]:
    buf = bytearray()
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            raise ProtocolError("connection closed before a full message")
        buf += chunk
        if len(buf) > MAX_MESSAGE:
            raise ProtocolError("message too large")
    try:
        doc = json.loads(buf)
    except ValueError as exc:
        raise ProtocolError(f"malformed message: {exc}") from None
    if not isinstance(doc, dict):
        raise ProtocolError("message is not a JSON object")
    return doc
