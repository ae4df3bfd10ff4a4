"""enforce and complain through syscage-runtime and real runc never make a container's filter looser than
its spec's own: the profile is intersected with it (argument conditions and errno kept), or the create is
refused in one line. Also: the always-allowed floor, and noNewPrivileges other than when learning."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from integration.env import Env, rootfs_with_program
from integration.test_wrapper_runc import WRAPPER, _wait_stopped, call
from syscage.syscalls import syscall_name

CLONE_NEWUSER = 0x10000000
DENY_MKDIR_UNSHARE = {"defaultAction": "SCMP_ACT_ALLOW",
                      "syscalls": [{"names": ["mkdir", "mkdirat", "unshare"], "action": "SCMP_ACT_ERRNO",
                                    "errnoRet": 13}]}  # EACCES: the spec's errno is kept
MKDIR_UNSHARE = "mkdir /tmp/x && echo made; unshare -U true && echo unshared; echo end"


def runtime_default_like() -> dict[str, Any]:
    """containerd's RuntimeDefault in shape: default ERRNO, an allow list, clone and unshare allowed only
    without CLONE_NEWUSER (SCMP_CMP_MASKED_EQ), clone3 ENOSYS (its flags cannot be inspected)."""
    conditional = {"clone", "unshare", "clone3"}
    names = sorted(n for n in (syscall_name(nr) for nr in range(600)) if n and n not in conditional)
    without_newuser = [{"index": 0, "value": CLONE_NEWUSER, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    return {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"},
                         {"names": ["clone", "unshare"], "action": "SCMP_ACT_ALLOW", "args": without_newuser},
                         {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}


def bundle(env: Env, args: list[str], mode: str, profile: str, seccomp: dict[str, Any] | None = None,
           rootfs: Path | None = None, nnp: bool | None = None) -> Path:
    path = env.bundle(args, learn=False, seccomp=seccomp,
                      annotations={"io.syscage.mode": mode, "io.syscage.profile": profile})
    if rootfs is not None or nnp is not None:
        spec = json.loads((path / "config.json").read_text())
        if rootfs is not None:
            spec["root"]["path"] = str(rootfs)
        if nnp is not None:
            spec["process"]["noNewPrivileges"] = nnp
        (path / "config.json").write_text(json.dumps(spec))
    return path


def run(env: Env, path: Path) -> subprocess.CompletedProcess[str]:
    return call(WRAPPER, "--root", str(env.runc_root), "run", "-b", str(path), env.name("c"))


def learned(env: Env, args: list[str], seccomp: dict[str, Any] | None = None, rootfs: Path | None = None,
            nnp: bool | None = None) -> str:
    name = env.name("isect")
    result = run(env, bundle(env, args, "learn", name, seccomp, rootfs, nnp))
    assert result.returncode == 0, result.stderr
    assert env.profile(name)["complete"]
    return name


@pytest.fixture(scope="module")
def probe_rootfs(env: Env) -> Path:
    return rootfs_with_program(env.rootfs, env.root / "rootfs-userns-probe", "userns_probe", "userns-probe", "-pthread")


def test_enforce_keeps_the_own_filter_of_a_bundle(env: Env) -> None:
    """A profile learned without a filter allows mkdir and unshare; a bundle whose own filter denies them
    keeps them denied under enforce (the seen hole: enforce replaced the filter and let both through)."""
    name = learned(env, ["sh", "-c", MKDIR_UNSHARE])
    assert {"mkdir", "unshare"} <= set(env.profile(name)["syscalls"])
    assert run(env, bundle(env, ["sh", "-c", MKDIR_UNSHARE], "off", name, DENY_MKDIR_UNSHARE)).stdout == "end\n"
    enforced = bundle(env, ["sh", "-c", MKDIR_UNSHARE], "enforce", name, DENY_MKDIR_UNSHARE)
    for _ in range(2):  # the bundle used again: the own filter is recalled, not the composed one
        result = run(env, enforced)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "end\n"
        assert "Permission denied" in result.stderr  # the own filter's errno
    written = json.loads((enforced / "config.json").read_text())["linux"]["seccomp"]
    assert written["defaultAction"] == "SCMP_ACT_ERRNO"
    assert {"names": ["mkdir", "unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13} in written["syscalls"]
    assert json.loads((enforced / ".syscage-own-seccomp.json").read_text())["own"] == DENY_MKDIR_UNSHARE


def test_complain_logs_only_what_the_own_filter_allows(env: Env) -> None:
    """complain with the bundle's own learned profile (which never saw mkdir: the filter denied it) used
    to put a LOG default in place of the own filter, letting mkdir and unshare through."""
    args = ["sh", "-c", MKDIR_UNSHARE]
    name = learned(env, args, DENY_MKDIR_UNSHARE)
    assert "mkdir" not in env.profile(name)["syscalls"]
    result = run(env, bundle(env, args, "complain", name, DENY_MKDIR_UNSHARE))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "end\n" and "Permission denied" in result.stderr
    assert env.profile(name)["runs_total"] == 2  # complain learns on


@pytest.mark.parametrize("learn_under", ["own filter", "no filter"])
def test_argument_conditions_survive_enforce(env: Env, probe_rootfs: Path, learn_under: str) -> None:
    """Learning under a RuntimeDefault-like filter records clone and unshare; enforcing that profile (or one
    learned without a filter) must keep clone/unshare with CLONE_NEWUSER denied, fork and threads working."""
    own = runtime_default_like()
    name = learned(env, ["/bin/userns-probe"], own if learn_under == "own filter" else None, probe_rootfs)
    assert {"clone", "unshare"} <= set(env.profile(name)["syscalls"])
    result = run(env, bundle(env, ["/bin/userns-probe"], "enforce", name, own, probe_rootfs))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "fork: ok", "thread: ok", "unshare(0): ok", "clone(CLONE_NEWUSER): Operation not permitted",
        "unshare(CLONE_NEWUSER): Operation not permitted"]
    # and without the own filter, the probe does get its user namespaces (it would show a hole)
    if learn_under == "no filter":
        free = run(env, bundle(env, ["/bin/userns-probe"], "off", name, None, probe_rootfs))
        assert "clone(CLONE_NEWUSER): ok" in free.stdout and "unshare(CLONE_NEWUSER): ok" in free.stdout


def test_a_deny_list_condition_on_an_allowed_syscall_keeps_its_condition(env: Env, probe_rootfs: Path) -> None:
    """A deny-list filter (default ALLOW) that denies unshare only with CLONE_NEWUSER, and a profile that allows
    unshare: "allow unshare unless CLONE_NEWUSER" is kept (as the negated condition); clone, which that filter
    does not restrict, keeps getting its user namespace."""
    name = learned(env, ["/bin/userns-probe"], rootfs=probe_rootfs)
    assert {"clone", "unshare"} <= set(env.profile(name)["syscalls"])
    own = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
         "args": [{"index": 0, "value": CLONE_NEWUSER, "valueTwo": CLONE_NEWUSER, "op": "SCMP_CMP_MASKED_EQ"}]}]}
    result = run(env, bundle(env, ["/bin/userns-probe"], "enforce", name, own, probe_rootfs))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "fork: ok", "thread: ok", "unshare(0): ok", "clone(CLONE_NEWUSER): ok",
        "unshare(CLONE_NEWUSER): Permission denied"]


def test_an_inexpressible_deny_list_condition_is_refused_in_one_line(env: Env) -> None:
    """"Allow unshare unless both CLONE_NEWUSER and CLONE_NEWNS" has no single-filter form for a profile that
    allows unshare with any argument (one learned before arguments were): refused. With the learned values
    (CLONE_NEWUSER alone, which that condition never meets) it has one: "allow if the learned value"."""
    name = learned(env, ["sh", "-c", MKDIR_UNSHARE])
    both = CLONE_NEWUSER | 0x00020000
    own = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["unshare"], "action": "SCMP_ACT_ERRNO",
         "args": [{"index": 0, "value": both, "valueTwo": both, "op": "SCMP_CMP_MASKED_EQ"}]}]}
    assert set(env.profile(name)["arguments"]["unshare"]["values"]) == {str(CLONE_NEWUSER)}
    composed = run(env, bundle(env, ["sh", "-c", MKDIR_UNSHARE], "enforce", name, own))
    assert composed.returncode == 0 and composed.stdout == "made\nunshared\nend\n", composed.stderr
    path = env.store / "profiles" / name / "profile.json"
    profile = json.loads(path.read_text())
    del profile["arguments"]
    path.write_text(json.dumps(profile))
    for mode in ("enforce", "complain"):
        path = bundle(env, ["sh", "-c", MKDIR_UNSHARE], mode, name, own)
        before = (path / "config.json").read_bytes()
        result = run(env, path)
        assert result.returncode != 0 and result.stdout == ""
        (line,) = result.stderr.strip().splitlines()
        assert f"{mode}: profile {name}:" in line and "restricts unshare only under argument conditions" in line
        assert (path / "config.json").read_bytes() == before  # refused before anything was written


def test_a_profile_learned_from_a_killed_container_runs(env: Env) -> None:
    """SIGKILL never lets `sleep 30` call exit_group: the floor allows it anyway (it used to crash, rc 139)."""
    name, cid = env.name("killed"), env.name("c")
    root = ["--root", str(env.runc_root)]
    learning = bundle(env, ["sleep", "30"], "learn", name)
    assert call(WRAPPER, *root, "create", "--bundle", str(learning), cid).returncode == 0
    assert call(WRAPPER, *root, "start", cid).returncode == 0
    pid = json.loads(call("runc", *root, "state", cid).stdout)["pid"]
    deadline = time.monotonic() + 30
    while not _sleeping(pid):  # sleep has exec'd and is in its nanosleep: killed mid-run, as in the field
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert call("runc", *root, "kill", cid, "KILL").returncode == 0
    _wait_stopped(env, cid)
    assert call(WRAPPER, *root, "delete", cid).returncode == 0
    profile = env.profile(name)
    assert profile["complete"]
    assert profile["syscalls"]["exit_group"]["sources"] == ["floor"]  # never seen: the floor
    result = run(env, bundle(env, ["sleep", "1"], "enforce", name))
    assert result.returncode == 0, result.stderr


def _sleeping(pid: int) -> bool:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return comm == "sleep" and state == "S"


@pytest.mark.parametrize("learned_nnp", [True, False])
def test_enforce_with_the_other_no_new_privileges(env: Env, learned_nnp: bool) -> None:
    """runc loads the filter earlier without noNewPrivileges and makes more syscalls under it: a profile
    learned with the other value gets the runtime's measured base set for this one."""
    args = ["sh", "-c", "echo hi"]
    name = learned(env, args, nnp=learned_nnp)
    assert [r["no_new_privileges"] for r in env.profile(name)["runs"]] == [learned_nnp]
    for nnp in (learned_nnp, not learned_nnp):
        result = run(env, bundle(env, args, "enforce", name, nnp=nnp))
        assert result.returncode == 0, (nnp, result.stderr)
        assert result.stdout == "hi\n"
