"""syscage-runtime's main, one command at a time, in front of a stand-in runtime (a shell script named runc
that says how it was called and keeps container state under its --root, as runc does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from syscage.markers import marker_path, write_marker

WRAPPER = Path(sys.executable).parent / "syscage-runtime"
# Prints its argv and whether the loop guard was set; `delete ID` removes <root>/ID as runc does.
FAKE_RUNC = """#!/bin/sh
echo "ran $* guard=${SYSCAGE_RUNTIME_WRAPPED:-}"
if [ "$1" = --root ] && [ "$3" = delete ]; then rm -rf "$2/$4"; fi
"""


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtime = root / "bin" / "runc"
        self.runtime.parent.mkdir()
        self.runtime.write_text(FAKE_RUNC)
        self.runtime.chmod(0o755)
        self.state = root / "state"  # the runtime's --root
        self.state.mkdir()
        self.run_dir = root / "run"
        self.config = root / "config.toml"
        self.config.write_text(f'[runtime]\npath = "{self.runtime}"\n[paths]\nrun_dir = "{self.run_dir}"\n'
                               f'store = "{root / "store"}"\nlog_file = "{root / "log"}"\n')

    def call(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environ = {k: v for k, v in os.environ.items() if k != "SYSCAGE_RUNTIME_WRAPPED"}
        return subprocess.run([str(WRAPPER), *args], capture_output=True, text=True, timeout=120, check=False,
                              env={**environ, "SYSCAGE_CONFIG": str(self.config), **(env or {})})

    def bundle(self, spec: dict) -> Path:
        bundle = self.root / "bundle"
        bundle.mkdir(exist_ok=True)
        (bundle / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", **spec}))
        return bundle

    def marker(self, cid: str) -> str:
        path = marker_path(str(self.run_dir), str(self.state), cid)
        assert path is not None
        return path


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_any_other_command_is_the_runtime_itself(world: World) -> None:
    done = world.call("--root", str(world.state), "list", "-q")
    assert done.returncode == 0 and done.stdout == f"ran --root {world.state} list -q guard=1\n" and done.stderr == ""


def test_a_runtime_path_back_at_the_wrapper_fails_at_once(world: World) -> None:
    done = world.call("list", env={"SYSCAGE_RUNTIME_WRAPPED": "1"})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == ("syscage-runtime: error: runtime.path points back at syscage-runtime; set it to the real "
                           "runc or crun\n")


def test_create_of_a_bundle_that_never_asked_for_syscage_is_untouched(world: World) -> None:
    bundle = world.bundle({"process": {"args": ["true"]}})
    before = (bundle / "config.json").read_bytes()
    done = world.call("--root", str(world.state), "create", "--bundle", str(bundle), "c1")
    assert done.returncode == 0 and done.stdout.startswith(f"ran --root {world.state} create --bundle {bundle} c1")
    assert (bundle / "config.json").read_bytes() == before


def test_create_refused_with_one_line_never_runs_the_runtime(world: World) -> None:
    bundle = world.bundle({"process": {}, "annotations": {"io.syscage.mode": "enforce", "io.syscage.profile": "web"}})
    done = world.call("--root", str(world.state), "create", "--bundle", str(bundle), "c1")
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith("syscage: error: container c1: enforce: profile web does not exist")
    assert not os.path.exists(world.marker("c1"))


def test_create_with_syscage_off_clears_what_an_earlier_run_wrote(world: World) -> None:
    stale = {"path": "/usr/local/bin/syscage-hook", "args": ["syscage-hook", "poststop"], "timeout": 60}
    bundle = world.bundle({"process": {}, "annotations": {"io.syscage.mode": "off"}, "hooks": {"poststop": [stale]}})
    done = world.call("--root", str(world.state), "run", "--bundle", str(bundle), "c1")
    assert done.returncode == 0 and done.stdout.startswith(f"ran --root {world.state} run --bundle {bundle} c1")
    assert "hooks" not in json.loads((bundle / "config.json").read_text())


def test_delete_without_a_marker_is_the_runtime_itself(world: World) -> None:
    (world.state / "c1").mkdir()
    done = world.call("--root", str(world.state), "delete", "c1")
    assert done.returncode == 0 and done.stdout == f"ran --root {world.state} delete c1 guard=1\n"


def test_delete_drops_a_stale_marker_of_a_container_that_is_gone(world: World) -> None:
    marker = world.marker("c1")
    write_marker(marker, "c1", str(world.state), "web", "learn", str(world.run_dir / "none.sock"), 5, "n1")
    done = world.call("--root", str(world.state), "delete", "c1")
    assert done.returncode == 0 and done.stdout == f"ran --root {world.state} delete c1 guard=1\n"
    assert not os.path.exists(marker)
    assert not (world.root / "store").exists()  # nothing recorded: the container was never there


def test_delete_of_a_learning_container_records_its_run(world: World) -> None:
    """No tracer answers (its socket is missing): the run is recorded as incomplete, and the delete succeeds."""
    (world.state / "c1").mkdir()
    marker = world.marker("c1")
    write_marker(marker, "c1", str(world.state), "web", "learn", str(world.run_dir / "none.sock"), 5, "n1")
    done = world.call("--root", str(world.state), "delete", "c1")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"ran --root {world.state} delete c1 guard=1\n"  # our child: the guard is set all the same
    assert "run of c1 is incomplete" in done.stderr and len(done.stderr.splitlines()) == 1
    profile = json.loads((world.root / "store" / "profiles" / "web" / "profile.json").read_text())
    (run,) = profile["runs"]
    assert run["container_id"] == "c1" and not profile["complete"] and "not running at poststop" in run["problems"][0]
    assert not os.path.exists(marker) and not (world.state / "c1").exists()
