"""apparmor.mode on this host, whose kernel has no AppArmor, through syscage-runtime and real runc:
`auto` runs an enforced container confined by seccomp alone and says so in the log, `required` refuses
to create it in one line, `off` leaves the spec's apparmorProfile as it was. (Where the kernel has
AppArmor: integration/realkernel/test_apparmor_enforce.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

from integration.env import Env, write_config
from integration.test_wrapper_runc import WRAPPER, call
from syscage.apparmor_load import ENABLED
from syscage.profile import Observation
from syscage.syscalls import syscall_name

DENIED = ("mkdir", "mkdirat")  # left out of the profile: seccomp's own denial shows it is in force


def host_config(env: Env, mode: str) -> dict[str, str]:
    path = env.root / f"config-apparmor-{mode}.toml"
    write_config(path, env.root, apparmor={"mode": mode})
    return {**os.environ, "SYSCAGE_CONFIG": str(path)}


def all_but_mkdir(env: Env) -> str:
    """A complete profile allowing every syscall but mkdir (written with the store, as the tracer would)."""
    name = env.name("aa-host")
    names = sorted({n for n in (syscall_name(nr) for nr in range(600)) if n} - set(DENIED))
    obs = Observation(container_id="c", started="t", stopped="t", cutover="seccomp", syscalls=names)
    env.profile_store().record_run(name, obs)
    return name


def enforced(env: Env, name: str, args: list[str], label: str | None = None) -> Path:
    extra = None
    if label is not None:
        spec = json.loads((env.bundle(args, learn=False, seccomp=None) / "config.json").read_text())
        extra = {"process": {**spec["process"], "apparmorProfile": label}}
    return env.bundle(args, learn=False, seccomp=None, extra=extra,
                      annotations={"io.syscage.mode": "enforce", "io.syscage.profile": name})


def log_entries(env: Env, cid: str) -> list[dict[str, object]]:
    entries = [json.loads(line) for line in env.log_file.read_text().splitlines()]
    return [e for e in entries if e.get("container_id") == cid]


def test_this_host_has_no_apparmor() -> None:
    assert not ENABLED.exists()  # what the tests below rely on; the guest lane covers a kernel with it


def test_auto_runs_seccomp_only_and_says_so_once(env: Env) -> None:
    name, cid = all_but_mkdir(env), env.name("c")
    bundle = enforced(env, name, ["sh", "-c", "mkdir /tmp/x || echo mkdir-denied; echo ran"])
    ran = call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(bundle), cid, env=host_config(env, "auto"))
    assert ran.returncode == 0, ran.stderr
    assert "mkdir-denied" in ran.stdout and "ran" in ran.stdout
    assert "Operation not permitted" in ran.stderr  # EPERM: the profile's seccomp filter
    spec = json.loads((bundle / "config.json").read_text())
    assert "apparmorProfile" not in spec["process"]
    said = [e for e in log_entries(env, cid) if "AppArmor" in str(e["event"])]
    assert [e["event"] for e in said] == [
        "no AppArmor here: the container is confined by seccomp only (apparmor.mode = auto)"], said
    assert said[0]["level"] == "info" and "/sys/module/apparmor" in str(said[0]["reason"])
    assert said[0]["profile"] == name and said[0]["mode"] == "enforce"


def test_required_refuses_in_one_line(env: Env) -> None:
    name, cid = all_but_mkdir(env), env.name("c")
    bundle = enforced(env, name, ["true"])
    before = (bundle / "config.json").read_bytes()
    refused = call(WRAPPER, "--root", str(env.runc_root), "create", "-b", str(bundle), cid,
                   env=host_config(env, "required"))
    assert refused.returncode == 1
    assert refused.stderr.splitlines() == [
        f"syscage: error: container {cid}: enforce: apparmor.mode = required, but the kernel has no AppArmor "
        f"({ENABLED} is missing); run it on a kernel with AppArmor, or set apparmor.mode = \"auto\" in the config"]
    assert (bundle / "config.json").read_bytes() == before
    assert env.runc("state", cid).returncode != 0  # never created


def test_off_leaves_the_spec_label_alone(env: Env) -> None:
    name = all_but_mkdir(env)
    for label in ("docker-default", "syscage-old//&docker-default"):
        cid = env.name("c")
        bundle = enforced(env, name, ["true"], label=label)
        ran = call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(bundle), cid,
                   env=host_config(env, "off"))
        spec = json.loads((bundle / "config.json").read_text())
        assert spec["process"]["apparmorProfile"] == label
        assert spec["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"  # enforce itself did happen
        # The spec asks for AppArmor on a kernel without it: runc itself refuses, as it would without syscage.
        assert ran.returncode != 0 and "apparmor" in ran.stderr.lower(), ran.stderr
        assert not [e for e in log_entries(env, cid) if "AppArmor" in str(e["event"])]
