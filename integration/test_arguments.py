"""Learned argument conditions (syscage.arguments) through syscage-runtime, real runc and crun, and eBPF: the
values a workload used are allowed under enforce, the others denied (socket families, clone and unshare
namespace flags, personality), threads still start (clone3 answered with ENOSYS, glibc falls back to clone),
and a syscall with too many values is allowed unconditionally, saying so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.env import Env, rootfs_with_program, write_config
from integration.test_crun import CRUN, _crun_ready_for_hybrid_cgroups
from integration.test_enforce_intersection import bundle
from integration.test_wrapper_runc import WRAPPER, call

PROBE = "/bin/args-probe"
LEARNED = ["socket(AF_UNIX): ok", "socket(AF_INET): ok", "thread: ok", "fork: ok", "unshare(0): ok",
           "personality(PER_LINUX): ok"]
DENIED = "Operation not permitted"
ENFORCED = [*LEARNED, f"socket(AF_INET6): {DENIED}", f"socket(AF_PACKET): {DENIED}", f"socket(AF_NETLINK): {DENIED}",
            f"clone(CLONE_NEWUSER): {DENIED}", f"unshare(CLONE_NEWUSER): {DENIED}",
            f"personality(PER_LINUX32): {DENIED}", "clone3: Function not implemented"]
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10


@pytest.fixture(scope="module")
def probe_rootfs(env: Env) -> Path:
    return rootfs_with_program(env.rootfs, env.root / "rootfs-args-probe", "args_probe", "args-probe", "-pthread")


@pytest.fixture(params=["runc", "crun"])
def runtime(request: pytest.FixtureRequest, env: Env) -> Iterator[str]:
    if request.param == "crun":
        _crun_ready_for_hybrid_cgroups()
        env.stop_tracer()
        write_config(env.config_path, env.root, runtime={"path": CRUN})
    try:
        yield request.param
    finally:
        if request.param == "crun":
            write_config(env.config_path, env.root)


def run(env: Env, runtime: str, args: list[str], mode: str, name: str, rootfs: Path) -> list[str]:
    state = str(env.root / f"{runtime}-state") if runtime == "crun" else str(env.runc_root)
    path = bundle(env, args, mode, name, None, rootfs)
    spec = json.loads((path / "config.json").read_text())
    for kind, caps in spec["process"]["capabilities"].items():  # AF_PACKET needs it: only seccomp may deny it
        spec["process"]["capabilities"][kind] = [*caps, "CAP_NET_RAW"]
    (path / "config.json").write_text(json.dumps(spec))
    result = call(WRAPPER, "--root", state, "run", "-b", str(path), env.name("c"))
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_learned_values_are_allowed_and_others_denied(env: Env, probe_rootfs: Path, runtime: str) -> None:
    name = env.name(f"args-{runtime}")
    assert run(env, runtime, [PROBE], "learn", name, probe_rootfs) == LEARNED
    profile = env.profile(name)
    assert profile["complete"], profile["incomplete_reasons"]
    arguments = profile["arguments"]
    assert set(arguments["socket"]["values"]) == {str(AF_UNIX), str(AF_INET)}
    assert arguments["socket"]["values"][str(AF_INET)]["first_run"] == profile["runs"][0]["container_id"]
    assert set(arguments["clone"]["values"]) == {"0"}  # threads and fork: no namespace bit
    assert "0" in arguments["personality"]["values"]
    seccomp = env.seccomp(name)
    socket_rules = [r["args"] for r in seccomp["syscalls"] if r["names"] == ["socket"]]
    assert sorted(a[0]["value"] for a in socket_rules) == [AF_UNIX, AF_INET]
    assert {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38} in seccomp["syscalls"]

    # Without enforce everything the probe tries works: the denials below are the profile's.
    assert run(env, runtime, [PROBE, "more"], "off", name, probe_rootfs)[6:9] == [
        "socket(AF_INET6): ok", "socket(AF_PACKET): ok", "socket(AF_NETLINK): ok"]
    assert run(env, runtime, [PROBE, "more"], "enforce", name, probe_rootfs) == ENFORCED


def test_too_many_values_give_an_unconditional_rule_and_say_so(env: Env, probe_rootfs: Path) -> None:
    env.stop_tracer()  # the tracer reads the bound when it starts
    write_config(env.config_path, env.root, seccomp={"max_argument_values": 1})
    try:
        name = env.name("args-overflow")
        assert run(env, "runc", [PROBE], "learn", name, probe_rootfs) == LEARNED
    finally:
        env.stop_tracer()
        write_config(env.config_path, env.root)
    profile = env.profile(name)
    assert profile["complete"], profile["incomplete_reasons"]
    socket = profile["arguments"]["socket"]
    assert "values" not in socket and "more than 1 distinct values of argument 0" in socket["unconditional"]
    assert "socket" in profile["syscalls"]
    rules = env.seccomp(name)["syscalls"]
    assert any("socket" in r["names"] and "args" not in r for r in rules)
    enforced = run(env, "runc", [PROBE, "more"], "enforce", name, probe_rootfs)
    assert "socket(AF_INET6): ok" in enforced and f"clone(CLONE_NEWUSER): {DENIED}" in enforced
    shown = call(str(Path(WRAPPER).parent / "syscage"), "show", name)
    assert shown.returncode == 0, shown.stderr
    assert "socket: any value (" in shown.stdout and "more than 1 distinct values" in shown.stdout


def test_a_profile_without_arguments_still_loads_unconditional(env: Env, probe_rootfs: Path) -> None:
    """A profile learned before arguments were (no `arguments` section) enforces every syscall unconditionally."""
    name = env.name("args-old")
    assert run(env, "runc", [PROBE], "learn", name, probe_rootfs) == LEARNED
    path = env.store / "profiles" / name / "profile.json"
    doc = json.loads(path.read_text())
    del doc["arguments"]
    path.write_text(json.dumps(doc))
    enforced = run(env, "runc", [PROBE, "more"], "enforce", name, probe_rootfs)
    assert "socket(AF_INET6): ok" in enforced and "clone(CLONE_NEWUSER): ok" in enforced
