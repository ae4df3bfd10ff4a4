"""The runtime wrapper's pure parts: argv parsing and spec modifiers, on real runc and containerd specs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from syscage.markers import marker_path, read_marker, remove_marker, write_marker
from syscage.shim.argv import find_operand, parse_create, parse_global
from syscage.shim.modifiers import add_learn_hooks, apply, ensure_filter_load, set_seccomp

FIXTURES = Path(__file__).parent / "fixtures"
SPECS = ["runc-spec.json", "containerd-spec.json"]


@pytest.mark.parametrize(("argv", "sub", "bundle", "cid"), [
    (["--root", "X", "--log", "Y", "--log-format", "json", "create", "--bundle=B", "--pid-file", "P", "ID"],
     "create", "/cwd/B", "ID"),
    (["create", "-b", "/abs/B", "ID"], "create", "/abs/B", "ID"),
    (["run", "--bundle", "rel/dir", "--detach", "ID"], "run", "/cwd/rel/dir", "ID"),
    (["--debug", "--systemd-cgroup", "run", "ID"], "run", "/cwd", "ID"),
    (["-root", "create", "create", "-b=/b", "run"], "create", "/b", "run"),  # flag values are not subcommands
    (["--root=/r", "create", "--console-socket", "/s", "--no-pivot", "-b", "B", "ID"], "create", "/cwd/B", "ID"),
    (["--log", "run", "state", "ID"], "state", None, None),
    (["--version"], None, None, None),
    (["create", "--pidfd-socket", "/s", "--bundle", "/b", "ID"], "create", "/b", "ID"),
    (["create", "ID", "--bundle", "/b"], "create", "/b", "ID"),  # runc takes options after the id too
    (["create", "-b", "/b1", "ID", "-b", "/b2"], "create", "/b2", "ID"),  # the last one wins
])
def test_subcommand_and_bundle(argv: list[str], sub: str | None, bundle: str | None, cid: str | None) -> None:
    found, index, _ = parse_global(argv)
    assert found == sub
    if bundle is not None:
        call = parse_create(argv, index, "runc", "/cwd")
        assert call is not None
        assert call.bundle == bundle
        assert call.container_id == cid


def test_global_log_option() -> None:
    argv = ["--root", "X", "--log", "/l.json", "--log-format=json", "create", "--log", "no", "ID"]
    assert parse_global(argv).options.get("log") == "/l.json"
    assert parse_global(argv).options.get("log-format") == "json"
    assert parse_global(["create", "ID"]).options.get("log") is None


@pytest.fixture(params=SPECS)
def spec(request: pytest.FixtureRequest) -> dict:
    return json.loads((FIXTURES / request.param).read_text())


def test_learn_hooks_added_once(spec: dict) -> None:
    original = copy.deepcopy(spec)
    modify = add_learn_hooks("/usr/local/bin/syscage-hook", 60, ["SYSCAGE_CONFIG=/c.toml"])
    out = apply(spec, [modify, modify])
    assert spec == original  # modifiers never mutate their input
    assert [h["args"] for h in out["hooks"]["prestart"]] == [["syscage-hook", "prestart"]]
    assert [h["args"] for h in out["hooks"]["poststop"]] == [["syscage-hook", "poststop"]]
    assert out["hooks"]["prestart"][0] == {"path": "/usr/local/bin/syscage-hook", "args": ["syscage-hook", "prestart"],
                                           "timeout": 60, "env": ["SYSCAGE_CONFIG=/c.toml"]}
    del out["hooks"]
    assert out == original


def test_existing_hooks_are_kept(spec: dict) -> None:
    spec["hooks"] = {"prestart": [{"path": "/usr/bin/other"}], "poststart": [{"path": "/x"}]}
    out = add_learn_hooks("/h", 5, [])(spec)
    assert out["hooks"]["prestart"][0] == {"path": "/usr/bin/other"}
    assert out["hooks"]["poststart"] == [{"path": "/x"}]
    assert len(out["hooks"]["prestart"]) == 2 and "env" not in out["hooks"]["prestart"][1]


def test_filter_load_added_only_when_missing(spec: dict) -> None:
    assert "seccomp" not in spec["linux"]
    # Every ABI the kernel runs is listed: a filter without `architectures` is native-only in libseccomp, and its
    # bad-arch action would kill an i386 syscall that the container runs without syscage.
    assert ensure_filter_load(spec)["linux"]["seccomp"] == {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]}
    existing = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    spec["linux"]["seccomp"] = existing
    assert ensure_filter_load(spec)["linux"]["seccomp"] == existing


def test_set_seccomp(spec: dict) -> None:
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    out = set_seccomp(profile)(spec)
    assert out["linux"]["seccomp"] == profile and "apparmorProfile" not in out["process"]
    assert set_seccomp(None)(out)["linux"].get("seccomp") is None


@pytest.mark.parametrize(("argv", "cid"), [
    (["--root", "/r", "delete", "ID"], "ID"),
    (["delete", "--force", "ID"], "ID"),
    (["delete", "-f", "ID"], "ID"),  # -f is --force here, not a flag that takes a value
    (["delete", "--", "-odd"], "-odd"),
    (["delete"], None),
])
def test_delete_operand(argv: list[str], cid: str | None) -> None:
    sub, index, _ = parse_global(argv)
    assert sub == "delete" and find_operand(argv, index) == cid


def test_learn_hooks_for_chosen_phases(spec: dict) -> None:
    out = apply(spec, [add_learn_hooks("/h", 60, [], ("prestart",))])
    assert [h["args"] for h in out["hooks"]["prestart"]] == [["syscage-hook", "prestart"]]
    assert "poststop" not in out["hooks"] or not any(h["path"] == "/h" for h in out["hooks"]["poststop"])


def test_marker_paths_keep_roots_apart_and_refuse_odd_ids() -> None:
    one = marker_path("/run/s", "/run/containerd/runc/a", "c1")
    two = marker_path("/run/s", "/run/containerd/runc/b", "c1")
    assert one and two and one != two and one.startswith("/run/s/learning/") and one.endswith("/c1")
    assert marker_path("/run/s", None, "c1") == "/run/s/learning/default/c1"
    assert marker_path("/run/s", "/a%2Fb", "c") != marker_path("/run/s", "/a/b", "c")
    for odd in ("", None, "../x", "a/b", ".hidden", "x" * 201):
        assert marker_path("/run/s", "/r", odd) is None


def test_marker_round_trip_and_foreign_markers(tmp_path: Path) -> None:
    path = marker_path(str(tmp_path), "/root", "c1")
    assert path is not None
    write_marker(path, "c1", "/root", "web", "learn", "/run/s/tracer.sock", 55, "n1")
    assert read_marker(path, "c1", "/root") == {"container_id": "c1", "runtime_root": "/root", "profile": "web",
                                                "mode": "learn", "socket": "/run/s/tracer.sock", "timeout": 55,
                                                "nonce": "n1"}
    assert read_marker(path, "c2", "/root") is None  # another container's
    assert read_marker(path, "c1", "/other") is None
    Path(path).write_text("{not json")
    assert read_marker(path, "c1", "/root") is None
    remove_marker(path)
    remove_marker(path)  # gone already: no error
    assert not Path(path).exists()


def test_a_reused_bundle_learns_under_its_own_filter(spec: dict, tmp_path: Path) -> None:
    """enforce writes the profile's filter into the bundle; learning with that bundle again must not learn
    under it (nothing it denies could ever be learned). The bundle's own filter is kept beside config.json."""
    from syscage.shim import ownfilter

    bundle = str(tmp_path)
    own = spec.get("linux", {}).get("seccomp")
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    assert ownfilter.recall(bundle, spec) == (False, None)
    enforced = apply(spec, [set_seccomp(profile)])
    ownfilter.remember(bundle, ownfilter.recall(bundle, spec), spec, enforced)
    again = apply(enforced, [set_seccomp({**profile, "defaultErrnoRet": 38})])  # enforced again, another filter
    ownfilter.remember(bundle, ownfilter.recall(bundle, enforced), enforced, again)
    assert ownfilter.recall(bundle, again) == (True, own)  # still the bundle's own, not the first profile's
    assert apply(again, [set_seccomp(own)]) == spec
    edited = apply(again, [set_seccomp({"defaultAction": "SCMP_ACT_LOG"})])  # the operator set a filter since
    assert ownfilter.recall(bundle, edited) == (False, None)
    ownfilter.forget(bundle)
    assert ownfilter.recall(bundle, again) == (False, None)


def test_stale_syscage_hooks_are_dropped(spec: dict) -> None:
    from syscage.shim.modifiers import drop_syscage_hooks

    other = {"path": "/usr/bin/true", "args": ["true"]}
    stale = {"prestart": [other, {"path": "/bin/sh", "args": ["sh", "-c", "x", "syscage-prestart-relay", "a", "b"]}],
             "poststop": [{"path": "/x/syscage-hook", "args": ["syscage-hook", "poststop"]}]}
    dirty = {**spec, "hooks": stale}
    clean = drop_syscage_hooks(dirty)
    assert clean["hooks"] == {"prestart": [other]} and dirty["hooks"] == stale
    assert "hooks" not in drop_syscage_hooks({**spec, "hooks": {"poststop": stale["poststop"]}})
    assert drop_syscage_hooks(spec) is spec


@pytest.mark.parametrize("annotated", [False, True])
def test_an_unreadable_create_line_is_refused_only_when_a_bundle_asks_for_syscage(tmp_path: Path,
                                                                                   annotated: bool) -> None:
    """An option syscage does not know (a newer runtime's, say) in a create: the bundle it names cannot be told
    for sure. A container that never asked for syscage is passed through untouched (a runtime upgrade must not
    break every container of the node); one whose bundle asks for syscage is refused, never run unchecked."""
    import os
    import subprocess
    import sys

    runtime = tmp_path / "runc"  # a stand-in that says how it was called
    runtime.write_text("#!/bin/sh\necho \"ran $*\"\n")
    runtime.chmod(0o755)
    config = tmp_path / "config.toml"
    config.write_text(f'[runtime]\npath = "{runtime}"\n[paths]\nrun_dir = "{tmp_path / "run"}"\n')
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    notes = {"io.syscage.mode": "enforce"} if annotated else {}
    (bundle / "config.json").write_text(json.dumps({"ociVersion": "1.0.2", "annotations": notes}))
    wrapper = Path(sys.executable).parent / "syscage-runtime"
    done = subprocess.run([str(wrapper), "create", "--a-future-option", "--bundle", str(bundle), "ID"],
                          capture_output=True, text=True, env={**os.environ, "SYSCAGE_CONFIG": str(config)},
                          timeout=60, check=False)
    if annotated:
        assert done.returncode == 1 and done.stdout == ""
        assert "cannot tell which bundle" in done.stderr and len(done.stderr.splitlines()) == 1
    else:
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"ran create --a-future-option --bundle {bundle} ID\n"
