"""Profiles that leave their node, with real runc and real eBPF: two stores (two nodes) learn halves of one
workload and are merged by `syscage import`; `export --format kubelet` writes a file plain runc enforces."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from integration.env import VENV_BIN, Env, write_config
from integration.test_wrapper_runc import WRAPPER, _stop_tracer_of, call
from syscage.bundle import write_bundle

SYSCAGE = str(VENV_BIN / "syscage")
HALF_A = ["sh", "-c", "mkdir /tmp/half-a && echo a"]
HALF_B = ["sh", "-c", "sync && echo b"]
WHOLE = ["sh", "-c", "mkdir /tmp/whole && sync && echo whole"]
UNLEARNED = ["sh", "-c", "mknod /tmp/fifo p; echo rc=$?"]  # mknodat: no node ever learned it


@dataclass
class Node:
    name: str
    root: Path
    config: Path

    def environ(self) -> dict[str, str]:
        import os

        return {**os.environ, "SYSCAGE_CONFIG": str(self.config)}

    def syscage(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([SYSCAGE, *args], capture_output=True, text=True, check=False, env=self.environ(),
                              timeout=120, stdin=subprocess.DEVNULL)

    def run(self, env: Env, args: list[str], mode: str, profile: str) -> subprocess.CompletedProcess[str]:
        """A container through syscage-runtime, learning or enforcing with this node's config."""
        bundle = env.bundle(args, learn=False, seccomp="allow-all",
                            annotations={"io.syscage.mode": mode, "io.syscage.profile": profile})
        return call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(bundle), env.name("c"),
                    env=self.environ())

    def profile(self, name: str) -> Path:
        return self.root / "store" / "profiles" / name / "profile.json"


@pytest.fixture
def nodes(env: Env) -> Iterator[tuple[Node, Node]]:
    made = []
    for label in ("node-a", "node-b"):
        root = env.root / env.name(label)
        root.mkdir()
        write_config(root / "config.toml", root, node={"name": label}, convergence={"min_runs": 1},
                     tracer={"start_timeout": 300, "idle_timeout": 600})
        made.append(Node(label, root, root / "config.toml"))
    yield made[0], made[1]
    for node in made:
        _stop_tracer_of(node.root / "run")


def test_two_nodes_learn_halves_and_the_imported_profile_enforces_the_whole(env: Env, nodes: tuple[Node, Node],
                                                                            tmp_path: Path) -> None:
    a, b = nodes
    name = env.name("travel")
    for node, half in ((a, HALF_A), (b, HALF_B)):
        learned = node.run(env, half, "learn", name)
        assert learned.returncode == 0, learned.stderr
    for node in (a, b):  # the tracer's static analysis rewrites profile.json once after the record: let it land
        deadline = time.monotonic() + 900
        while (json.loads(node.profile(name).read_text()).get("static") or {}).get("runs_analysed", 0) < 1:
            assert time.monotonic() < deadline, f"{node.name}: the run was never analysed"
            time.sleep(0.5)
    # Before the import, node B's profile lacks node A's half: the whole workload fails there.
    before = b.run(env, WHOLE, "enforce", name)
    assert "whole" not in before.stdout, before.stdout
    exported = tmp_path / "node-a.json"
    done = a.syscage("export", name, "--format", "profile", "-o", str(exported))
    assert done.returncode == 0, done.stderr
    imported = b.syscage("import", str(exported))
    assert imported.returncode == 0, imported.stderr
    merged = json.loads(b.profile(name).read_text())
    assert {"mkdir", "mkdirat"} & set(merged["syscalls"]) and "sync" in merged["syscalls"]
    assert sorted(r["node"] for r in merged["runs"]) == ["node-a", "node-b"]
    assert merged["complete"], merged["incomplete_reasons"]
    first = b.profile(name).read_bytes()
    again = b.syscage("import", str(exported))
    assert again.returncode == 0 and "unchanged" in again.stdout, again
    assert b.profile(name).read_bytes() == first

    whole = b.run(env, WHOLE, "enforce", name)
    assert whole.returncode == 0 and whole.stdout == "whole\n", whole.stderr
    denied = b.run(env, UNLEARNED, "enforce", name)
    assert "Operation not permitted" in denied.stderr + denied.stdout and "rc=1" in denied.stdout, denied


def test_kubelet_export_is_enforced_by_plain_runc(env: Env, nodes: tuple[Node, Node], tmp_path: Path) -> None:
    a, _ = nodes
    name = env.name("kubelet")
    for _ in range(2):  # the second run brings nothing new: converged under min_runs = 1
        learned = a.run(env, WHOLE, "learn", name)
        assert learned.returncode == 0, learned.stderr
    kubelet = tmp_path / "kubelet"
    done = a.syscage("export", name, "--format", "kubelet", "--kubelet-root", str(kubelet))
    assert done.returncode == 0, done.stderr
    assert f"localhostProfile: syscage/{name}.json" in done.stdout and "type: Localhost" in done.stdout
    seccomp = json.loads((kubelet / "seccomp" / "syscage" / f"{name}.json").read_text())

    def plain(args: list[str]) -> subprocess.CompletedProcess[str]:
        # No syscage anywhere: runc alone, with the exported file as the spec's filter (what kubelet does).
        bundle = write_bundle(env.root / "bundles" / env.name("kb"), env.rootfs, args, seccomp=seccomp)
        return call("runc", "--root", str(env.runc_root), "run", "-b", str(bundle), env.name("c"))

    works = plain(WHOLE)
    assert works.returncode == 0 and works.stdout == "whole\n", works.stderr
    denied = plain(UNLEARNED)
    assert "Operation not permitted" in denied.stderr + denied.stdout and "rc=1" in denied.stdout, denied
