"""What each start path imports: an allow-list per path, so that speed work cannot silently regress.

Each path runs in a fresh interpreter (as the real launchers start one) and reports sys.modules at the
point where it hands over: syscage-runtime's passthrough at its exec of the runtime, the prepared prestart
hook once the tracer watches, a learning `create` once its relayed prestart is answered, a learning
`delete` once the run is recorded. Modules the bare interpreter already has are not counted. A module
missing from a list is a test failure naming it: add it only if the path really needs it.
"""

from __future__ import annotations

import ast
import fcntl
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from syscage.markers import marker_path, write_marker

# The wrapper's passthrough: nothing beyond the interpreter's own start-up but a few small modules of ours.
PASSTHROUGH = {
    "syscage", "syscage.configcache", "syscage.console", "syscage.shim", "syscage.shim.argv",
    "syscage.shim.fastconfig", "syscage.shim.guard", "syscage.markers", "syscage.shim.runtime",
    "syscage.standard",
}
SOCKET_AND_JSON = {"_json", "_socket", "array", "collections.abc", "json", "json.decoder", "json.encoder",
                   "json.scanner", "math", "select", "selectors", "socket"}
# The prepared prestart hook: json and socket to ask the tracer, nothing of the config loader.
PREPARED_HOOK = SOCKET_AND_JSON | {
    "syscage", "syscage.hooks", "syscage.hooks.entry", "syscage.hooks.fast_prestart", "syscage.protocol",
}
# A learning create: the config loader (from its parse cache), the OCI model, the modifiers, the relay and the
# tracer's client; no TOML parser, no structlog, no libseccomp, no dataclasses, no subprocess.
LEARNING_CREATE = PASSTHROUGH | SOCKET_AND_JSON | {
    "syscage.arch", "syscage.atomic", "syscage.config", "syscage.errors", "syscage.hooks", "syscage.hooks.client",
    "syscage.hooks.fast_prestart", "syscage.jsonlog", "syscage.liveness", "syscage.locks", "syscage.names",
    "syscage.oci", "syscage.protocol", "syscage.shim.child", "syscage.shim.learning", "syscage.shim.modifiers",
    "syscage.shim.ownfilter", "syscage.shim.prepare", "syscage.shim.relay",
    "_typing", "_weakrefset", "copy", "fcntl", "signal", "typing", "typing.io", "typing.re", "weakref",
}
# A learning delete: the runtime as our child (ctypes: its parent-death signal), then the record through the
# client; no config loader when the tracer answers (the marker carries its socket and timeout), no typing.
LEARNING_DELETE = PASSTHROUGH | SOCKET_AND_JSON | {
    "syscage.errors", "syscage.hooks", "syscage.hooks.client", "syscage.liveness", "syscage.locks",
    "syscage.protocol", "syscage.shim.child", "syscage.shim.finish",
    "_ctypes", "_struct", "ctypes", "ctypes._endian", "fcntl", "signal", "struct",
}

FAKE_RUNC = """#!/bin/sh
if [ "$1" = --root ] && [ "$3" = delete ]; then rm -rf "$2/$4"; fi
"""


REPORT = "import sys; print(sorted(sys.modules), flush=True)"  # imports nothing more


def baseline() -> set[str]:
    out = subprocess.run([sys.executable, "-c", REPORT], capture_output=True, text=True, check=True).stdout
    return set(ast.literal_eval(out))


def run_path(script: str, env: dict[str, str], stdin: bytes = b"") -> set[str]:
    """The modules `script` has imported when it prints them (the last line of its stdout)."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], input=stdin, capture_output=True,
                          timeout=120, check=False, env={**os.environ, **env})
    assert done.returncode == 0, done.stderr.decode()
    return set(ast.literal_eval(done.stdout.decode().splitlines()[-1])) - baseline()


def serve(path: Path, reply: dict, count: int = 1) -> list[dict]:
    """A stand-in for the tracer's socket, answering `count` requests with `reply`."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(4)
    got: list[dict] = []

    def answer() -> None:
        with server:
            for _ in range(count):
                conn, _ = server.accept()
                with conn:
                    got.append(json.loads(conn.makefile().readline()))
                    conn.sendall(json.dumps(reply).encode() + b"\n")

    threading.Thread(target=answer, daemon=True).start()
    return got


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    runtime = tmp_path / "bin" / "runc"
    runtime.parent.mkdir()
    runtime.write_text(FAKE_RUNC)
    runtime.chmod(0o755)
    (tmp_path / "state").mkdir()
    (tmp_path / "run").mkdir()
    hook = tmp_path / "bin" / "syscage-hook"
    hook.write_text("")
    config = tmp_path / "config.toml"
    config.write_text(f'[runtime]\npath = "{runtime}"\nhook_path = "{hook}"\n[paths]\nrun_dir = "{tmp_path / "run"}"\n'
                      f'store = "{tmp_path / "store"}"\nlog_file = "{tmp_path / "log"}"\n'
                      f'[tracer]\nstart_timeout = 5\n[apparmor]\nmode = "off"\n')
    # The parse caches are warm on a node (syscage.configcache): fill them first.
    warm = ("from syscage.shim.fastconfig import read_keys; from syscage.config import load_config; "
            "read_keys(); load_config()")
    subprocess.run([sys.executable, "-c", warm], check=True, env={**os.environ, "SYSCAGE_CONFIG": str(config)})
    return {"root": tmp_path, "runtime": runtime, "config": config, "run": tmp_path / "run",
            "state": tmp_path / "state"}


def env_of(world: dict[str, Path]) -> dict[str, str]:
    return {"SYSCAGE_CONFIG": str(world["config"]), "PYTHONDONTWRITEBYTECODE": "1"}


def over(imported: set[str], allowed: set[str]) -> list[str]:
    return sorted(imported - allowed)


def test_passthrough(world: dict[str, Path]) -> None:
    imported = run_path(f"""
        import os, sys
        def execv(path, args):
            {REPORT}
            os._exit(0)
        os.execv = execv
        sys.argv = ["syscage-runtime", "--root", "{world['state']}", "list"]
        from syscage.shim.runtime import main
        main()
    """, env_of(world))
    assert over(imported, PASSTHROUGH) == []


def test_prepared_prestart_hook(world: dict[str, Path]) -> None:
    from syscage.hooks.fast_prestart import prepared_argument
    from syscage.protocol import Watch

    sock = world["run"] / "tracer.sock"
    got = serve(sock, {"ok": True, "slot": 0})
    argument = prepared_argument(str(sock), Watch("c1", 0, "web", mode="learn"), "n1")
    state = json.dumps({"ociVersion": "1.0.2", "id": "c1", "pid": 42, "status": "created", "bundle": "/b",
                        "annotations": {"io.syscage.mode": "learn", "io.syscage.profile": "web"}}).encode()
    imported = run_path(f"""
        import sys
        sys.argv = ["syscage-hook", "prestart", {argument!r}]
        from syscage.hooks.entry import main
        assert main() == 0
        {REPORT}
    """, env_of(world), state)
    assert got and got[0]["via"] == "prepared hook"  # the fast path, not the full hook
    assert over(imported, PREPARED_HOOK) == []


def test_learning_create(world: dict[str, Path]) -> None:
    """Up to the answer of its relayed prestart (the tracer's lock is held: none is started)."""
    lock = os.open(world["run"] / "tracer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        got = serve(world["run"] / "tracer.sock", {"ok": True, "slot": 0})
        bundle = world["root"] / "bundle"
        bundle.mkdir()
        (bundle / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "process": {"args": ["true"]},
                                                        "annotations": {"io.syscage.mode": "learn",
                                                                        "io.syscage.profile": "web"}}))
        marker = marker_path(str(world["run"]), str(world["state"]), "c1")
        state = json.dumps({"ociVersion": "1.0.2", "id": "c1", "pid": 42, "status": "created",
                            "bundle": str(bundle)})
        imported = run_path(f"""
            import syscage.shim.runtime
            from syscage.shim.prepare import CreateRequest, prepare_bundle
            raw = open("{bundle}/config.json", "rb").read()
            prepared = prepare_bundle(CreateRequest("{bundle}", raw, "c1", None, None, "{marker}", "{world['state']}"))
            learning = prepared.serve.__self__
            assert learning.relay is not None
            assert learning.answer({state.encode()!r}) is None
            learning.abandon()
            {REPORT}
        """, env_of(world))
    finally:
        os.close(lock)
    assert got and got[0]["via"] == "relay"
    assert over(imported, LEARNING_CREATE) == []


def test_learning_delete(world: dict[str, Path]) -> None:
    (world["state"] / "c1").mkdir()
    sock = world["run"] / "tracer.sock"
    got = serve(sock, {"ok": True, "complete": True, "problems": []})
    marker = marker_path(str(world["run"]), str(world["state"]), "c1")
    assert marker is not None
    write_marker(marker, "c1", str(world["state"]), "web", "learn", str(sock), 5, "n1")
    imported = run_path(f"""
        import sys
        import syscage.shim.child
        def exit_like(code):
            assert code == 0
            {REPORT}
            sys.exit(0)
        syscage.shim.child.exit_like = exit_like
        sys.argv = ["syscage-runtime", "--root", "{world['state']}", "delete", "c1"]
        from syscage.shim.runtime import main
        main()
    """, env_of(world))
    assert got and got[0]["op"] == "record" and not os.path.exists(marker)
    assert over(imported, LEARNING_DELETE) == []
