"""The prestart hook's fast path: what it sends, and that anything unexpected hands over to the full hook."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest

from syscage.hooks.fast_prestart import key_arguments, prepared_argument, watch_prepared
from syscage.protocol import Watch

WATCH = Watch("c1", 0, "web", mode="learn", profile_defaulted=False, exec_mode=False, no_new_privileges=True)


def serve_once(path: Path, reply: dict) -> list[dict]:
    """A one-request stand-in for the tracer's socket; returns the list the request lands in."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    got: list[dict] = []

    def answer() -> None:
        conn, _ = server.accept()
        with conn, server:
            got.append(json.loads(conn.makefile().readline()))
            conn.sendall(json.dumps(reply).encode() + b"\n")

    threading.Thread(target=answer, daemon=True).start()
    return got


def state(cid: str = "c1", pid: object = 42, mode: str = "learn", profile: str = "web") -> bytes:
    return json.dumps({"ociVersion": "1.0.2", "id": cid, "pid": pid, "status": "created", "bundle": "/b",
                       "annotations": {"io.syscage.mode": mode, "io.syscage.profile": profile}}).encode()


def test_watch_request_carries_the_prepared_fields(tmp_path: Path) -> None:
    sock = tmp_path / "tracer.sock"
    got = serve_once(sock, {"ok": True, "slot": 0})
    assert watch_prepared(prepared_argument(str(sock), WATCH, "n1"), state())
    assert got == [{"op": "watch", "container_id": "c1", "pid": 42, "via": "prepared hook", "key": "nonce:n1",
                    "profile": "web", "mode": "learn", "profile_defaulted": False, "exec_mode": False,
                    "no_new_privileges": True, "bundle": "/b"}]


def test_the_full_hook_gets_the_nonce_when_the_fast_path_hands_over() -> None:
    assert key_arguments(prepared_argument("/s", WATCH, "n1")) == ["--key=n1"]
    assert key_arguments(prepared_argument("/s", WATCH, "")) == []
    assert key_arguments("--prepared={broken") == []


def test_a_prepared_hook_without_a_nonce_keys_on_the_bundle(tmp_path: Path) -> None:
    sock = tmp_path / "tracer.sock"
    got = serve_once(sock, {"ok": True, "slot": 0})
    assert watch_prepared(prepared_argument(str(sock), WATCH, ""), state())
    assert got[0]["key"] == "bundle:/b"


@pytest.mark.parametrize("raw", [b"not json", state(cid="other"), state(pid=0), state(pid="42"), b"[]",
                                 state(mode="off"), state(profile="other")])
def test_odd_state_hands_over(tmp_path: Path, raw: bytes) -> None:
    assert not watch_prepared(prepared_argument(str(tmp_path / "none.sock"), WATCH, "n1"), raw)


def test_no_tracer_or_a_refusal_hands_over(tmp_path: Path) -> None:
    assert not watch_prepared(prepared_argument(str(tmp_path / "none.sock"), WATCH, "n1"), state())
    sock = tmp_path / "tracer.sock"
    serve_once(sock, {"ok": False, "error": "full"})
    assert not watch_prepared(prepared_argument(str(sock), WATCH, "n1"), state())
    assert not watch_prepared("--prepared={broken", state())
