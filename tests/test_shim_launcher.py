"""The C launcher installed as containerd-shim-syscage-v2 (shim/shim_launcher.c): once the Python shim wrapper has
made <run_dir>/shim-path/runc, it execs containerd's runc shim exactly as the Python wrapper would (same arguments,
that directory first in PATH); anything else goes to the Python wrapper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from syscage import configcache
from syscage.shim import containerd_shim, fastconfig
from syscage.shim.launcher_build import build

RECORDER = """#!/bin/sh
{{ echo {who}; echo "$0"; echo "$PATH"; for a in "$@"; do printf '%s\\0' "$a"; done; }} > "$LAUNCH_OUT"
exit 5
"""


def _script(path: Path, who: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(RECORDER.format(who=who))
    path.chmod(0o755)
    return path


@pytest.fixture
def shim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    launcher = build("containerd-shim-syscage-v2", tmp_path / "bin" / "containerd-shim-syscage-v2",
                     ("-Werror", f'-DCACHE_DIR="{cache}"'))
    _script(tmp_path / "bin" / "containerd-shim-syscage-v2-py", "python")
    runc_shim = _script(tmp_path / "containerd" / "containerd-shim-runc-v2", "runc-shim")
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nrun_dir = "{tmp_path / "run"}"\n')
    monkeypatch.setattr(configcache, "CACHE_DIR", str(cache))
    monkeypatch.setenv("SYSCAGE_CONFIG", str(config))
    fastconfig.read_keys()  # the cache, as the Python side writes it
    return {"launcher": launcher, "runc_shim": runc_shim, "config": config, "run": tmp_path / "run",
            "out": tmp_path / "out"}


def _call(shim: dict[str, Path], path: str | None, *args: str) -> tuple[list[str], int]:
    env = {"SYSCAGE_CONFIG": str(shim["config"]), "LAUNCH_OUT": str(shim["out"])}
    if path is not None:
        env["PATH"] = path
    shim["out"].unlink(missing_ok=True)
    done = subprocess.run([str(shim["launcher"]), *args], env=env, capture_output=True, text=True, timeout=30,
                          check=False)
    if not shim["out"].exists():
        return ["nobody", done.stderr], done.returncode
    who, argv0, seen_path, rest = shim["out"].read_bytes().split(b"\n", 3)
    return [who.decode(), argv0.decode(), seen_path.decode(), *(a.decode() for a in rest.split(b"\0")[:-1])], \
        done.returncode


def _make_link(shim: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """What the Python wrapper does on the first start, run as the launcher runs it (argv[0] beside the launcher)."""
    monkeypatch.setattr(sys, "argv", [str(shim["launcher"].parent / "containerd-shim-syscage-v2-py")])
    return Path(containerd_shim.shim_path_dir())


def test_first_start_goes_to_python_then_straight_to_the_runc_shim(shim: dict[str, Path],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = f"/nonexistent:{shim['runc_shim'].parent}:/usr/bin:/bin"  # the stand-in before the real runc shim
    args = ["-namespace", "default", "-address", "/run/containerd/containerd.sock", "start"]
    assert _call(shim, path, *args)[0][0] == "python"  # no runc link yet: Python makes it
    directory = _make_link(shim, monkeypatch)
    assert os.readlink(directory / "runc") == str(shim["launcher"].parent / "syscage-runtime")
    got, code = _call(shim, path, *args)
    assert got == ["runc-shim", str(shim["runc_shim"]), f"{directory}:{path}", *args] and code == 5
    # our own directory already first in PATH (the runc shim's own restarts): skipped, never searched
    got, _ = _call(shim, f"{directory}:{path}", *args)
    assert got[:3] == ["runc-shim", str(shim["runc_shim"]), f"{directory}:{directory}:{path}"]


@pytest.mark.parametrize("path", ["relative/dir:{shim}", "/usr//bin:{shim}", "/usr/./bin:{shim}", "/usr/bin/:{shim}",
                                  "/a/../b:{shim}", "/nothing-here", ""])
def test_a_path_it_would_have_to_normalise_or_no_runc_shim_goes_to_python(
        shim: dict[str, Path], monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    _make_link(shim, monkeypatch)
    assert _call(shim, path.format(shim=shim["runc_shim"].parent), "start")[0][0] == "python"


def test_a_link_to_another_syscage_runtime_goes_to_python(shim: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    directory = _make_link(shim, monkeypatch)
    (directory / "runc").unlink()
    (directory / "runc").symlink_to("/usr/local/bin/syscage-runtime")
    assert _call(shim, str(shim["runc_shim"].parent), "start")[0][0] == "python"


def test_without_a_valid_config_cache_it_goes_to_python(shim: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _make_link(shim, monkeypatch)
    shim["config"].write_text(shim["config"].read_text() + "# edited\n")
    assert _call(shim, str(shim["runc_shim"].parent), "start")[0][0] == "python"


def test_default_path_when_none_is_set(shim: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """As the Python wrapper: PATH unset means the usual system directories (the stand-in is not there)."""
    _make_link(shim, monkeypatch)
    got, _ = _call(shim, None, "start")
    real = [d for d in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            if os.access(f"{d}/containerd-shim-runc-v2", os.X_OK)]
    assert got[0] == ("nobody" if real else "python")  # the real runc shim ran (and failed: no containerd here)
