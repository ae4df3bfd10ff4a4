"""The tracer's wire protocol: one JSON object per line over a unix stream socket, one reply per request.

The requests that carry a container (Watch, Record, Release) are defined here once: every sender builds
one and sends its .message(), and the tracer reads one back with .parse(). Plain classes, no dataclasses
or typing at run time: the prepared prestart hook imports this module on the container's start path."""

from __future__ import annotations

import json
import socket

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing on the hook's fast path
if TYPE_CHECKING:
    from typing import Any

    from syscage.config import Config

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


def _field(doc: dict[str, Any], name: str, kind: type) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"{doc.get('op')} needs {name} ({kind.__name__})")
    return value


class Watch:
    """op "watch": start watching a created container (its init's pid) for a learning run of `profile`.

    key: watch_key(); exec_mode: the spec has no seccomp filter, so recording cuts over at exec; via: who
    asked (the hook, the prepared hook or syscage-runtime's relay), for the log; bundle: the container's
    bundle directory (from the runtime's state), where the tracer finds its rootfs for the static analysis."""

    OP = "watch"
    __slots__ = ("bundle", "container_id", "exec_mode", "key", "mode", "no_new_privileges", "pid", "profile",
                 "profile_defaulted", "via")

    def __init__(self, container_id: str, pid: int, profile: str, key: str = "", mode: str = "learn",
                 profile_defaulted: bool = False, exec_mode: bool = False, no_new_privileges: bool = False,
                 via: str = "hook", bundle: str = "") -> None:
        self.container_id, self.pid, self.profile, self.key, self.mode = container_id, pid, profile, key, mode
        self.profile_defaulted, self.exec_mode = profile_defaulted, exec_mode
        self.no_new_privileges, self.via, self.bundle = no_new_privileges, via, bundle

    def message(self) -> dict[str, Any]:
        return {"op": self.OP, **{name: getattr(self, name) for name in self.__slots__}}

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> Watch:
        try:
            key = doc.get("key") or ""  # none: a hook with neither nonce nor bundle
            if not isinstance(key, str):
                raise ProtocolError("key")
            return cls(_field(doc, "container_id", str), _field(doc, "pid", int), _field(doc, "profile", str),
                       key, str(doc.get("mode") or "learn"),
                       bool(doc.get("profile_defaulted")), bool(doc.get("exec_mode")),
                       bool(doc.get("no_new_privileges")), str(doc.get("via") or "hook"),
                       str(doc.get("bundle") or ""))
        except ProtocolError:
            raise ProtocolError("watch needs container_id, pid and profile") from None


class Record:
    """op "record": merge what was seen of a stopped container into its profile, durably, then reply
    ({"ok", "complete", "problems", ...}). runtime_exe: the runtime binary, for the run's runtime version."""

    OP = "record"
    __slots__ = ("container_id", "key", "mode", "profile", "runtime_exe")

    def __init__(self, container_id: str, profile: str, key: str = "", mode: str = "learn",
                 runtime_exe: str = "") -> None:
        self.container_id, self.profile, self.key, self.mode, self.runtime_exe = (
            container_id, profile, key, mode, runtime_exe)

    def message(self) -> dict[str, Any]:
        return {"op": self.OP, **{name: getattr(self, name) for name in self.__slots__}}

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> Record:
        try:
            return cls(_field(doc, "container_id", str), _field(doc, "profile", str),
                       str(doc.get("key") or ""), str(doc.get("mode") or "learn"),
                       doc["runtime_exe"] if isinstance(doc.get("runtime_exe"), str) else "")
        except ProtocolError:
            raise ProtocolError("record needs container_id and profile") from None


class Release:
    """op "release": a create failed after its prestart; let its watch (and pending run) go, recording nothing."""

    OP = "release"
    __slots__ = ("container_id", "key", "profile")

    def __init__(self, container_id: str, key: str, profile: str | None = None) -> None:
        self.container_id, self.key, self.profile = container_id, key, profile

    def message(self) -> dict[str, Any]:
        return {"op": self.OP, **{name: getattr(self, name) for name in self.__slots__}}

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> Release:
        profile = doc.get("profile")
        return cls(_field(doc, "container_id", str), str(doc.get("key") or ""),
                   profile if isinstance(profile, str) else None)


STATUS = {"op": "status"}


class TracerUnavailable(Exception):
    """No tracer answers on the socket."""


class TracerLost(TracerUnavailable):
    """The tracer took the request but gave no answer: it may or may not have acted on it."""


def request(config: Config, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """One request to the config's running tracer. Raises TracerUnavailable if none answers."""
    return call(str(config.tracer_socket), message, timeout)


def tracer_pid(config: Config) -> int | None:
    """The pid of the process listening on the tracer's socket, as the kernel gives it in *our* PID namespace
    (SO_PEERCRED): the pid a tracer reports of itself is its own namespace's. None if none answers."""
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
