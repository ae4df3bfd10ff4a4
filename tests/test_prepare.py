"""The filter enforce and complain put in a container's spec (shim/prepare.py): the profile intersected with
the spec's own filter, the always-allowed floor, the runtime base set for a noNewPrivileges never learned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from syscage.config import Config
from syscage.jsonlog import JsonLog
from syscage.oci import Selection
from syscage.profile import Observation
from syscage.runtimebase import runtime_base
from syscage.shim.prepare import Incompatible, Unenforceable, enforceable_seccomp, modifiers_for
from syscage.store import ProfileStore

DENY_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW",
              "syscalls": [{"names": ["mkdir", "mkdirat", "unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}


def _learn(store: Path, name: str, syscalls: list[str], floor: tuple[str, ...] = (), **kw: Any) -> None:
    obs = Observation(container_id="c1", started="t", stopped="t", cutover="seccomp", syscalls=syscalls, **kw)
    ProfileStore(store, 1, floor).record_run(name, obs)


def _allowed(seccomp: dict[str, Any]) -> set[str]:
    return {n for r in seccomp["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args") for n in r["names"]}


def test_an_own_filter_is_kept_under_enforce_and_complain(tmp_path: Path) -> None:
    """Learned without a filter (mkdir seen), enforced in a bundle whose own filter denies mkdir: still denied."""
    _learn(tmp_path, "web", ["read", "write", "mkdir", "unshare"])
    config = Config(store=tmp_path)
    for mode, default in (("enforce", "SCMP_ACT_ERRNO"), ("complain", "SCMP_ACT_LOG")):
        seccomp = enforceable_seccomp("web", config, DENY_MKDIR, None, mode)
        assert seccomp["defaultAction"] == default
        assert {"names": ["mkdir", "unshare"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13} in seccomp["syscalls"]
        assert "mkdir" not in _allowed(seccomp) and "read" in _allowed(seccomp)
    assert enforceable_seccomp("web", config, {"defaultAction": "SCMP_ACT_ALLOW"})["syscalls"] == [
        {"names": sorted({"read", "write", "mkdir", "unshare", *config.always_allow}), "action": "SCMP_ACT_ALLOW"}]


def test_an_older_profile_gets_the_floor(tmp_path: Path) -> None:
    _learn(tmp_path, "old", ["read", "write"])  # recorded without a floor (as before seccomp.always_allow)
    seccomp = enforceable_seccomp("old", Config(store=tmp_path))
    assert {"exit_group", "exit", "rt_sigreturn", "restart_syscall"} <= _allowed(seccomp)
    bare = _allowed(enforceable_seccomp("old", Config(store=tmp_path, always_allow=())))
    assert "exit_group" not in bare and "restart_syscall" in bare  # the kernel's own: whatever the config says


def test_incomplete_profile_refusal_names_no_other_container(tmp_path: Path) -> None:
    _learn(tmp_path, "web", ["read"], problems=["tracer died"])
    with pytest.raises(Unenforceable) as caught:
        enforceable_seccomp("web", Config(store=tmp_path))
    assert "c1" not in str(caught.value) and "tracer died" not in str(caught.value)
    assert "incomplete (1 reason, shown by `syscage show web`)" in str(caught.value)


@pytest.mark.parametrize("learned", [True, False])
def test_no_new_privileges_never_learned_gets_the_runtime_base(tmp_path: Path, learned: bool) -> None:
    _learn(tmp_path, "web", ["read", "write"], no_new_privileges=learned)
    base = runtime_base("runc")
    assert base is not None
    runc = Config(store=tmp_path, runtime_path=Path("/usr/sbin/runc"))
    same = _allowed(enforceable_seccomp("web", runc, None, learned))
    other = _allowed(enforceable_seccomp("web", runc, None, not learned))
    assert "capset" not in same
    key = "no_new_privileges" if not learned else "new_privileges"
    assert other - same == (set(base[key]) | set(base["asynchronous"])) - same
    assert "capset" in other or learned is False  # runc's set without noNewPrivileges has capset
    crun = _allowed(enforceable_seccomp("web", runc._replace(runtime_path=Path("/usr/bin/crun")), None, not learned))
    assert crun - same == set(runtime_base("crun")[key]) - same  # type: ignore[index]
    with pytest.raises(Incompatible, match="no measured base set"):
        enforceable_seccomp("web", runc._replace(runtime_path=Path("/opt/my-runtime")), None, not learned)


def test_an_older_profile_without_recorded_no_new_privileges_is_not_refused(tmp_path: Path) -> None:
    _learn(tmp_path, "web", ["read"])  # no_new_privileges unknown
    config = Config(store=tmp_path, runtime_path=Path("/opt/my-runtime"))
    assert "read" in _allowed(enforceable_seccomp("web", config, None, True))


def test_complain_refuses_an_own_filter_it_cannot_intersect(tmp_path: Path) -> None:
    """complain must not fall back to learning without a word when the spec's filter and the profile clash."""
    _learn(tmp_path, "web", ["read", "unshare"])
    own = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["unshare"], "action": "SCMP_ACT_ERRNO", "args": [
        {"index": 0, "value": 0x10020000, "valueTwo": 0x10020000, "op": "SCMP_CMP_MASKED_EQ"}]}]}
    spec = {"linux": {"seccomp": own}, "process": {}}
    config = Config(store=tmp_path, run_dir=tmp_path / "run", log_file=tmp_path / "log")
    log = JsonLog.of(config, "runtime")
    for mode in ("enforce", "complain"):
        with pytest.raises(Incompatible, match=f"{mode}: profile web: .*restricts unshare only under argument"):
            modifiers_for(Selection(mode, "web"), config, log, (False, None), spec)
    # enforce.on_missing_profile = allow: the container keeps its own filter, nothing looser
    plan = modifiers_for(Selection("enforce", "web"), config._replace(on_missing_profile="allow"), log,
                         (False, None), spec)
    assert plan.modifiers == [] and not plan.replaces_filter


def test_intersecting_imports_no_libseccomp_or_merge_code(tmp_path: Path) -> None:
    """Enforce runs on the container's start path: composing with the spec's own filter is pure Python."""
    import subprocess
    import sys

    _learn(tmp_path, "web", ["read", "write"], floor=Config().always_allow, no_new_privileges=True)
    code = ("import sys\nfrom pathlib import Path\nfrom syscage.config import Config\n"
            "from syscage.shim.prepare import enforceable_seccomp\n"
            f"own = {DENY_MKDIR!r}\n"
            f"enforceable_seccomp('web', Config(store=Path({str(tmp_path)!r})), own, True)\n"
            "enforceable_seccomp('web', Config(store=Path(" + repr(str(tmp_path)) + ")), own, True, 'complain')\n"
            "enforceable_seccomp('web', Config(store=Path(" + repr(str(tmp_path)) + "), coverage='learned+static'),"
            " own, True)\n"
            "print(sorted(m for m in ('pyseccomp', 'syscage.profile', 'dataclasses', 'syscage.runtimebase',"
            " 'elftools', 'capstone', 'syscage.static_syscalls') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_never_allow_is_denied_at_enforce_even_in_a_profile_learned_before(tmp_path: Path) -> None:
    _learn(tmp_path, "web", ["read", "keyctl"])
    config = Config(store=tmp_path, never_allow=("keyctl",))
    for spec_filter in (None, {"defaultAction": "SCMP_ACT_ALLOW"}):
        allowed = _allowed(enforceable_seccomp("web", config, spec_filter))
        assert "keyctl" not in allowed and "read" in allowed


# -- modifiers_for: mode x the spec's own filter x the profile's state ------------------------------------------

OWN_STATES = ("none", "spec", "recalled")  # no filter; the spec's own; syscage's filter with the own one recalled
PROFILE_STATES = ("missing", "incomplete", "complete")


def _filter_of(spec: dict[str, Any]) -> dict[str, Any] | None:
    return spec.get("linux", {}).get("seccomp")


@pytest.mark.parametrize("profile_state", PROFILE_STATES)
@pytest.mark.parametrize("own_state", OWN_STATES)
@pytest.mark.parametrize("mode", ["off", "learn", "complain", "enforce"])
def test_modifiers_for_every_mode_own_filter_and_profile_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               mode: str, own_state: str, profile_state: str) -> None:
    from syscage.shim import prepare
    from syscage.shim.modifiers import allow_all_filter, apply

    started: list[bool] = []
    monkeypatch.setattr(prepare, "start_tracer_early", lambda config: started.append(True))
    if profile_state != "missing":
        _learn(tmp_path, "web", ["read", "write", "mkdir"], problems=["lost"] if profile_state == "incomplete" else [])
    config = Config(store=tmp_path, run_dir=tmp_path / "run", log_file=tmp_path / "log", apparmor_mode="off")
    written = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    spec_filter = {"none": None, "spec": DENY_MKDIR, "recalled": written}[own_state]
    spec: dict[str, Any] = {"process": {}, "linux": {"seccomp": spec_filter} if spec_filter else {}}
    own = (True, DENY_MKDIR) if own_state == "recalled" else (False, None)
    own_filter = None if own_state == "none" else DENY_MKDIR  # what the bundle itself asks for
    usable = profile_state == "complete"
    if mode == "enforce" and not usable:
        with pytest.raises(Unenforceable, match="enforce: profile web"):
            modifiers_for(Selection(mode, "web"), config, JsonLog.of(config, "runtime"), own, spec)
        return
    plan = modifiers_for(Selection(mode, None if mode == "off" else "web"), config, JsonLog.of(config, "runtime"),
                         own, spec)
    result = _filter_of(apply(spec, plan.modifiers))
    assert plan.restores_own == (own_state == "recalled" and not (mode in ("enforce", "complain") and usable))
    assert started == ([True] if mode in ("learn", "complain") else [])
    if mode == "off":
        assert result == own_filter and not plan.replaces_filter
    elif mode == "learn" or (mode == "complain" and not usable):
        # Learns under the bundle's own filter (never an earlier enforce's), or an allow-all one to cut over at.
        assert result == (own_filter or allow_all_filter()) and not plan.replaces_filter
    else:
        assert plan.replaces_filter
        assert result is not None and result["defaultAction"] == ("SCMP_ACT_ERRNO" if mode == "enforce" else
                                                                  "SCMP_ACT_LOG")
        assert {"read", "write"} <= _allowed(result)
        # Never looser than the bundle's own filter: what it denies stays denied.
        assert ("mkdir" in _allowed(result)) == (own_filter is None)
