"""The shipped runtime base set still covers what the installed runc does after loading the filter,
and complain mode runs what enforce would deny while it keeps learning."""

from __future__ import annotations

import json

import pytest

from integration.env import Env
from integration.test_wrapper_runc import WRAPPER, call
from syscage.hooks.daemon.observe import runtime_base


@pytest.mark.parametrize("nnp", [True, False], ids=["no-new-privileges", "new-privileges"])
def test_base_set_covers_installed_runc(env: Env, nnp: bool) -> None:
    base = runtime_base("runc")
    assert base is not None
    allowed = set(base["no_new_privileges" if nnp else "new_privileges"]) | set(base["asynchronous"])
    name = env.name("base")
    for _ in range(5):
        bundle = env.bundle(["true"], profile=name)
        spec = json.loads((bundle / "config.json").read_text())
        spec["process"]["noNewPrivileges"] = nnp
        (bundle / "config.json").write_text(json.dumps(spec))
        assert env.run(bundle).returncode == 0
    for run in env.profile(name)["runs"]:
        assert set(run["pre_exec"]) <= allowed, (
            f"runc now makes {set(run['pre_exec']) - allowed} after loading the filter: "
            "re-measure with `python -m tools.measure_runtime_base`")


def test_complain_mode_allows_and_keeps_learning(env: Env) -> None:
    name = env.name("complain")
    assert env.run(env.bundle(["sh", "-c", "echo hi"], profile=name)).returncode == 0
    assert not set(env.profile(name)["syscalls"]) & {"mkdir", "mkdirat"}
    bundle = env.bundle(["mkdir", "/tmp/allowed-in-complain"], learn=False, seccomp=None,
                        annotations={"io.syscage.mode": "complain", "io.syscage.profile": name})
    result = call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(bundle), env.name("c"))
    assert result.returncode == 0, result.stderr
    spec = json.loads((bundle / "config.json").read_text())
    assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_LOG"
    assert set(env.profile(name)["syscalls"]) & {"mkdir", "mkdirat"}  # learned while complaining
