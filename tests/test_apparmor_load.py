"""AppArmor at enforce (syscage.apparmor_load, and the decision in shim/prepare.py): detection, the labels
(complain apart, stacked on the spec's own), loading only when the text or the kernel's copy changed, and
what apparmor.mode = auto, required and off do. The kernel here has no AppArmor: detection and the kernel's
profile list are pointed at files a test writes, and the parser at a script that records its calls (the
real parser and kernel are exercised in integration/realkernel/test_apparmor_enforce.py)."""

from __future__ import annotations

import copy
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from syscage import apparmor
from syscage import apparmor_load as aa
from syscage.apparmor import check, render
from syscage.config import Config
from syscage.errors import SyscageError
from syscage.jsonlog import JsonLog
from syscage.oci import Selection
from syscage.profile import Observation
from syscage.shim.modifiers import apply, set_apparmor
from syscage.shim.prepare import modifiers_for
from syscage.store import ProfileStore


@pytest.fixture
def kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A kernel with AppArmor, as far as syscage.apparmor_load looks: the enabled flag, securityfs' profile
    list (which the fake parser keeps), and a parser that logs each call to parser.calls."""
    enabled = tmp_path / "enabled"
    enabled.write_text("Y\n")
    securityfs = tmp_path / "securityfs"
    securityfs.mkdir()
    (securityfs / "profiles").write_text("docker-default (enforce)\n")
    parser = tmp_path / "apparmor_parser"
    # Reads the profile from stdin and lists its name and mode, as the kernel would after a load.
    parser.write_text(f"""#!/bin/sh
text=$(cat)
echo "$*" >> {tmp_path}/parser.calls
name=$(printf '%s\\n' "$text" | sed -n 's/^profile "\\([^"]*\\)".*/\\1/p')
mode=enforce; case "$text" in *,complain\\)*) mode=complain;; esac
grep -v "^$name (" {securityfs}/profiles > {securityfs}/profiles.new; echo "$name ($mode)" >> {securityfs}/profiles.new
mv {securityfs}/profiles.new {securityfs}/profiles
""")
    parser.chmod(parser.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(aa, "ENABLED", enabled)
    monkeypatch.setattr(aa, "SECURITYFS", securityfs)
    monkeypatch.setattr(aa, "PARSER", str(parser))
    return tmp_path


def calls(kernel: Path) -> list[str]:
    path = kernel / "parser.calls"
    return path.read_text().splitlines() if path.exists() else []


def learned(store: Path, name: str = "web") -> None:
    obs = Observation(container_id="c1", started="t", stopped="t", cutover="seccomp", syscalls=["read", "write"],
                      no_new_privileges=False)
    ProfileStore(store, 1).record_run(name, obs)


def spec(label: str | None = None) -> dict[str, Any]:
    process: dict[str, Any] = {"args": ["true"]}
    if label is not None:
        process["apparmorProfile"] = label
    return {"process": process, "linux": {}}


def events(log: Path) -> list[str]:
    import json

    return [json.loads(line)["event"] for line in log.read_text().splitlines()] if log.exists() else []


# --- detection ----------------------------------------------------------------------------------------------

def test_detection_reads_the_module_flag_and_securityfs(tmp_path: Path) -> None:
    enabled, securityfs = tmp_path / "enabled", tmp_path / "apparmor"
    assert "has no AppArmor" in str(aa.available(enabled, securityfs))
    enabled.write_text("N\n")
    assert "disabled" in str(aa.available(enabled, securityfs))
    enabled.write_text("Y\n")
    assert "securityfs" in str(aa.available(enabled, securityfs))
    securityfs.mkdir()
    (securityfs / "profiles").write_text("")
    assert aa.available(enabled, securityfs) is None


# --- labels -------------------------------------------------------------------------------------------------

def test_complain_has_a_label_of_its_own_that_no_profile_name_can_take() -> None:
    assert (aa.PREFIX, aa.PARSER) == (apparmor.PREFIX, apparmor.PARSER)  # kept apart only for import cost
    assert aa.label_for("web", "enforce") == "syscage-web"
    assert aa.label_for("web", "complain") == "syscage-web-COMPLAIN"
    # Profile names are lower case: no enforce label is ever a complain label.
    with pytest.raises(SyscageError):
        aa.label_for("web-COMPLAIN", "enforce")


def test_the_complain_profile_is_renamed_and_flagged_and_still_compiles() -> None:
    from syscage.profile import new_profile

    text = render(new_profile("web", "SCMP_ARCH_X86_64", "2026-01-01T00:00:00Z"))
    assert aa.for_mode(text, "web", "enforce") == text
    complain = aa.for_mode(text, "web", "complain")
    assert 'profile "syscage-web-COMPLAIN" flags=(attach_disconnected,mediate_deleted,complain) {' in complain
    assert 'peer="syscage-web-COMPLAIN"' in complain and '"syscage-web"' not in complain
    assert complain.count("\n") == text.count("\n")
    check(complain)  # apparmor_parser -Q against the pinned features


@pytest.mark.parametrize(("spec_label", "own", "label"), [
    (None, None, "syscage-web"),
    ("", None, "syscage-web"),
    ("unconfined", "unconfined", "syscage-web"),  # unconfined may be replaced
    ("docker-default", "docker-default", "syscage-web//&docker-default"),
    ("cri-containerd.apparmor.d", "cri-containerd.apparmor.d", "syscage-web//&cri-containerd.apparmor.d"),
    # A reused bundle: what an earlier enforce or complain wrote is syscage's, the rest is the spec's own.
    ("syscage-old//&docker-default", "docker-default", "syscage-web//&docker-default"),
    ("syscage-old-COMPLAIN", None, "syscage-web"),
    ("a//&b", "a//&b", "syscage-web//&a//&b"),
])
def test_the_spec_own_profile_is_kept_stacked(spec_label: str | None, own: str | None, label: str) -> None:
    assert aa.own_label(spec_label) == own
    assert aa.stacked("syscage-web", aa.own_label(spec_label)) == label


# --- loading only when changed --------------------------------------------------------------------------------

def test_loads_once_then_only_when_the_text_or_the_kernel_copy_changed(kernel: Path) -> None:
    run_dir = kernel / "run"
    first = aa.ensure_loaded("profile one\n", "syscage-web", "enforce", run_dir)
    assert first.loaded and len(calls(kernel)) == 1
    assert (run_dir / "apparmor" / "syscage-web").read_text() == "profile one\n"
    assert stat.S_IMODE(os.stat(run_dir / "apparmor").st_mode) == 0o700
    (kernel / "securityfs" / "profiles").write_text("docker-default (enforce)\nsyscage-web (enforce)\n")
    again = aa.ensure_loaded("profile one\n", "syscage-web", "enforce", run_dir)
    assert not again.loaded and len(calls(kernel)) == 1  # unchanged: the parser does not run
    assert aa.ensure_loaded("profile two\n", "syscage-web", "enforce", run_dir).loaded  # changed
    (kernel / "securityfs" / "profiles").write_text("syscage-web (complain)\n")  # replaced by someone else
    assert aa.ensure_loaded("profile two\n", "syscage-web", "enforce", run_dir).loaded
    (kernel / "securityfs" / "profiles").write_text("")  # removed (aa-teardown, apparmor_parser -R)
    assert aa.ensure_loaded("profile two\n", "syscage-web", "enforce", run_dir).loaded
    assert len(calls(kernel)) == 4
    assert calls(kernel)[0] == "-r -K --warn=rule-not-enforced --Werror=rule-not-enforced --abort-on-error"


def test_a_failed_load_is_one_line_and_keeps_no_copy(tmp_path: Path) -> None:
    parser = tmp_path / "parser"
    parser.write_text("#!/bin/sh\necho 'AppArmor parser error at line 3: bad' >&2\nexit 1\n")
    parser.chmod(0o755)
    with pytest.raises(SyscageError, match="could not load AppArmor profile syscage-web: AppArmor parser error") as e:
        aa.ensure_loaded("x\n", "syscage-web", "enforce", tmp_path / "run", str(parser), tmp_path)
    assert "\n" not in str(e.value)
    assert not (tmp_path / "run" / "apparmor" / "syscage-web").exists()
    with pytest.raises(aa.ParserMissing, match="not found"):
        aa.ensure_loaded("x\n", "syscage-web", "enforce", tmp_path / "run", str(tmp_path / "none"), tmp_path)


# --- the spec modifier -----------------------------------------------------------------------------------------

def test_set_apparmor_sets_and_removes_without_touching_its_input() -> None:
    original = spec("docker-default")
    kept = copy.deepcopy(original)
    assert apply(original, [set_apparmor("syscage-web//&docker-default")])["process"]["apparmorProfile"] == \
        "syscage-web//&docker-default"
    assert "apparmorProfile" not in apply(original, [set_apparmor(None)])["process"]
    assert apply(original, [set_apparmor("docker-default")]) is original
    assert original == kept


# --- apparmor.mode in the plan ---------------------------------------------------------------------------------

def plan_spec(config: Config, mode: str, spec_label: str | None = None) -> dict[str, Any]:
    log = JsonLog.of(config, "runtime")
    original = spec(spec_label)
    plan = modifiers_for(Selection(mode, "web"), config, log, (False, None), original)
    return apply(original, plan.modifiers)


def test_auto_without_apparmor_is_seccomp_only_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aa, "ENABLED", tmp_path / "missing")
    learned(tmp_path)
    config = Config(store=tmp_path, run_dir=tmp_path / "run", log_file=tmp_path / "log")
    out = plan_spec(config, "enforce")
    assert "apparmorProfile" not in out["process"] and out["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert [e for e in events(tmp_path / "log") if "converged" not in e] == [  # a profile learned once: it warns
        "no AppArmor here: the container is confined by seccomp only (apparmor.mode = auto)"]
    # The spec's own profile is never dropped, even where runc will refuse it for want of AppArmor.
    assert plan_spec(config, "enforce", "docker-default")["process"]["apparmorProfile"] == "docker-default"


def test_required_without_apparmor_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aa, "ENABLED", tmp_path / "missing")
    learned(tmp_path)
    config = Config(store=tmp_path, run_dir=tmp_path / "run", log_file=tmp_path / "log", apparmor_mode="required")
    for mode in ("enforce", "complain"):
        with pytest.raises(SyscageError, match=f"^{mode}: apparmor.mode = required, but the kernel has no AppArmor"):
            plan_spec(config, mode)
    # Learning confines nothing by a profile: required does not stop it.
    assert "apparmorProfile" not in plan_spec(config, "learn")["process"]


def test_off_never_touches_the_spec_label(kernel: Path) -> None:
    learned(kernel)
    config = Config(store=kernel, run_dir=kernel / "run", log_file=kernel / "log", apparmor_mode="off")
    for label in (None, "docker-default", "syscage-old"):
        out = plan_spec(config, "enforce", label)
        assert out["process"].get("apparmorProfile") == label
    assert calls(kernel) == []


def test_enforce_loads_and_stacks_complain_apart(kernel: Path) -> None:
    learned(kernel)
    config = Config(store=kernel, run_dir=kernel / "run", log_file=kernel / "log")
    assert plan_spec(config, "enforce")["process"]["apparmorProfile"] == "syscage-web"
    assert plan_spec(config, "enforce", "unconfined")["process"]["apparmorProfile"] == "syscage-web"
    assert plan_spec(config, "enforce", "docker-default")["process"]["apparmorProfile"] == \
        "syscage-web//&docker-default"
    assert plan_spec(config, "complain", "docker-default")["process"]["apparmorProfile"] == \
        "syscage-web-COMPLAIN//&docker-default"
    assert len(calls(kernel)) == 2  # one load per label, however many containers
    text = (kernel / "run" / "apparmor" / "syscage-web").read_text()
    assert text == render(ProfileStore(kernel, 1).read("web") or {})
    # learn (and off) take off what an earlier enforce of a reused bundle left, and keep the spec's own.
    assert plan_spec(config, "learn", "syscage-web//&docker-default")["process"]["apparmorProfile"] == "docker-default"
    assert "apparmorProfile" not in plan_spec(config, "off", "syscage-web")["process"]


def test_a_missing_parser_under_auto_is_seccomp_only(kernel: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aa, "PARSER", str(kernel / "no-parser"))
    learned(kernel)
    config = Config(store=kernel, run_dir=kernel / "run", log_file=kernel / "log")
    assert "apparmorProfile" not in plan_spec(config, "enforce")["process"]
    with pytest.raises(aa.ParserMissing):
        plan_spec(config._replace(apparmor_mode="required"), "enforce")


def test_the_start_path_imports_no_subprocess_or_dataclasses(kernel: Path, tmp_path: Path) -> None:
    """Enforce runs on the container's start path: where AppArmor is missing, and where the profile is
    already loaded, neither the renderer's parser call (subprocess) nor dataclasses is imported."""
    import subprocess
    import sys

    learned(kernel)
    config = Config(store=kernel, run_dir=kernel / "run", log_file=kernel / "log")
    plan_spec(config, "enforce")  # loads it (the fake parser lists it in the fake securityfs)
    assert len(calls(kernel)) == 1
    code = f"""
import sys
from pathlib import Path
from syscage import apparmor, apparmor_load as aa
from syscage.config import Config
from syscage.jsonlog import JsonLog
from syscage.oci import Selection
from syscage.shim.prepare import modifiers_for
config = Config(store=Path({str(kernel)!r}), run_dir=Path({str(kernel / "run")!r}),
                log_file=Path({str(kernel / "log")!r}))
aa.ENABLED, aa.SECURITYFS, aa.PARSER = Path(sys.argv[1]), Path({str(kernel / "securityfs")!r}), {aa.PARSER!r}
spec = {{"process": {{"args": ["true"]}}}}
plan = modifiers_for(Selection("enforce", "web"), config, JsonLog.of(config, "runtime"), (False, None), spec)
print(len(plan.modifiers), sorted(m for m in ("subprocess", "dataclasses", "pyseccomp") if m in sys.modules))
"""
    for enabled, count in ((tmp_path / "missing", 1), (kernel / "enabled", 2)):
        out = subprocess.run([sys.executable, "-c", code, str(enabled)], capture_output=True, text=True, check=True)
        assert out.stdout.split("\n")[0] == f"{count} []", out
    assert len(calls(kernel)) == 1
    assert events(kernel / "log")[-1] == "AppArmor profile in place"
