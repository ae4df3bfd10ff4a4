"""The hook's handling of bad input, in-process (no runtime, no root needed)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from syscage.hooks import client, hook
from syscage.hooks.daemon.tracer_bpf import bits_to_numbers
from tests.test_fast_prestart import serve_once

pytestmark = pytest.mark.usefixtures("private_config")  # every test here: a config of its own


def run_hook(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str],
             stdin: bytes) -> tuple[int, str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    code = hook.main(args)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["prestart"], b"{oops", "not valid JSON"),
    (["prestart"], b'{"id": 5, "bundle": "/b"}', "no valid container id"),
    (["poststop"], b'{"id": "c", "bundle": "relative"}', "absolute bundle"),
    (["prestart"], b'{"id": "c", "bundle": "/b", "annotations": {"io.syscage.mode": "learn", "io.syscage.profile":'
                   b' "../x"}}', "invalid profile name"),
    (["prestart"], b'{"id": "c", "bundle": "/b", "annotations": {"io.syscage.mode": "sometimes"}}', "mode"),
    (["auto"], b'{"id": "c", "bundle": "/b", "status": "running", "annotations": {"io.syscage.mode": "learn"}}',
     "cannot tell the hook phase"),
    (["later"], b"{}", "unknown hook phase"),
    (["poststop", "--bogus"], b"{}", "unknown hook phase"),
])
def test_bad_input_one_line_nonzero(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                    private_config: Path, args: list[str], stdin: bytes, message: str) -> None:
    code, err = run_hook(monkeypatch, capsys, args, stdin)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not (private_config / "store").exists()


def test_unannotated_container_is_ignored(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                          private_config: Path) -> None:
    state = json.dumps({"id": "c", "bundle": "/b", "status": "created", "pid": 1}).encode()
    assert run_hook(monkeypatch, capsys, ["prestart"], state) == (0, "")
    assert not (private_config / "run").exists()


def test_bits_to_numbers() -> None:
    assert bits_to_numbers([0b101, 1 << 63]) == [0, 2, 127]


def test_run_recorded_since_prevents_double_records(private_config: Path) -> None:
    import time

    from syscage.config import load_config
    from syscage.profile import Observation
    from syscage.store import ProfileStore, utc_now

    config = load_config()
    before = time.time()
    assert not client.run_recorded_since(config, "web", "c1", before)
    run = Observation("c1", utc_now(), utc_now(), "seccomp", syscalls=["read"])
    ProfileStore(config.store, 1).record_run("web", run)
    assert client.run_recorded_since(config, "web", "c1", before)
    assert not client.run_recorded_since(config, "web", "c2", before)
    assert not client.run_recorded_since(config, "web", "c1", time.time() + 60)


@pytest.mark.parametrize(("args", "key"), [(["poststop", "--key=n1"], "nonce:n1"), (["poststop"], "bundle:/b")])
def test_poststop_names_its_container_by_key(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                            private_config: Path, args: list[str], key: str) -> None:
    """A nonce from syscage-runtime, else the bundle (hooks.d): the tracer hands a watch only to its own key."""
    (private_config / "run").mkdir()
    got = serve_once(private_config / "run" / "tracer.sock", {"ok": True, "complete": True, "problems": []})
    state = json.dumps({"id": "c", "bundle": "/b", "status": "stopped",
                        "annotations": {"io.syscage.mode": "learn", "io.syscage.profile": "web"}}).encode()
    assert run_hook(monkeypatch, capsys, args, state) == (0, "")
    assert got[0]["op"] == "record" and got[0]["key"] == key


def test_a_failed_record_fails_the_poststop_hook(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                 private_config: Path) -> None:
    (private_config / "run").mkdir()
    serve_once(private_config / "run" / "tracer.sock", {"ok": False, "error": "No space left on device"})
    state = json.dumps({"id": "c", "bundle": "/b", "status": "stopped",
                        "annotations": {"io.syscage.mode": "learn", "io.syscage.profile": "web"}}).encode()
    code, err = run_hook(monkeypatch, capsys, ["poststop"], state)
    assert code != 0 and len(err.strip().splitlines()) == 1 and "No space left on device" in err
