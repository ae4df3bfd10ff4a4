"""diff, check and lint: the pure logic, the shipped Docker data against the fixture, and the CLI's exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syscage import cli, dockerdefault
from syscage.profile import Observation
from syscage.review import check, diff, lint, oci_policy, profile_policy
from syscage.store import ProfileStore

FIXTURE = Path(__file__).parent / "fixtures" / "docker-default-seccomp.json"
X86_64 = "SCMP_ARCH_X86_64"


def _docker() -> dict:
    return json.loads(FIXTURE.read_text())


def _obs(cid: str, syscalls: list[str], stopped: str = "2026-01-01T00:00:00.000Z") -> Observation:
    return Observation(container_id=cid, started=stopped, stopped=stopped, cutover="seccomp", syscalls=syscalls)


def test_shipped_docker_tables_match_the_fixture() -> None:
    policy = oci_policy(_docker(), "docker", X86_64, kernel="6.1")
    assert policy.allowed == dockerdefault.ALLOWED
    assert policy.conditional == dockerdefault.CONDITIONAL


def test_docker_default_as_docker_reads_it() -> None:
    policy = oci_policy(_docker(), "docker", X86_64, kernel="6.1")
    assert policy.status("read") == "allowed"
    assert policy.status("chroot") == "allowed"  # CAP_SYS_CHROOT is one of Docker's default capabilities
    assert policy.status("arch_prctl") == "allowed"  # an amd64-only rule
    assert policy.status("s390_runtime_instr") == "denied"  # an s390 rule does not apply here
    assert policy.status("keyctl") == "denied"
    assert policy.status("clone3") == "conditional" and "CAP_SYS_ADMIN" in policy.conditional["clone3"]
    assert policy.status("socket") == "conditional" and "argument conditions" in policy.conditional["socket"]
    assert policy.status("ptrace") == "allowed"  # minKernel 4.8
    assert oci_policy(_docker(), "docker", X86_64, kernel="4.4").status("ptrace") == "conditional"


def test_deny_list_filter() -> None:
    doc = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mount"], "action": "SCMP_ACT_ERRNO"},
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 9, "op": "SCMP_CMP_EQ"}]}]}
    policy = oci_policy(doc, "f", X86_64)
    assert policy.status("read") == "allowed" and policy.status("mount") == "denied"
    assert policy.status("kill") == "conditional"


def test_diff_both_ways_and_conditionally() -> None:
    a = profile_policy({"syscalls": {"read": {}, "keyctl": {}, "socket": {}}}, "A")
    b = oci_policy(_docker(), "docker", X86_64)
    result = diff(a, b)
    assert [e["syscall"] for e in result["only_a"]] == ["keyctl"]
    assert "read" not in [e["syscall"] for e in result["only_b"]]
    assert "write" in [e["syscall"] for e in result["only_b"]]
    [cond] = result["conditional"]
    assert cond["syscall"] == "socket" and cond["a"] == "allowed" and cond["b"].startswith("conditionally allowed (")
    assert diff(a, a) == {"a": "A", "b": "A", "only_a": [], "only_b": [], "conditional": []}


def test_check_gate() -> None:
    reference = oci_policy(_docker(), "docker", X86_64)
    ok = profile_policy({"syscalls": {"read": {}, "socket": {}}}, "p")
    assert check(ok, reference) == ([], {"socket": reference.conditional["socket"]})
    bad = profile_policy({"syscalls": {"read": {}, "keyctl": {}, "bpf": {}}}, "p")
    assert check(bad, reference)[0] == ["keyctl"]


def test_lint_names_the_run_that_first_needed_it(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path, 1)
    store.record_run("web", _obs("c1", ["read", "waitid"], "2026-01-01T00:00:00.000Z"))
    store.record_run("web", _obs("c2", ["read", "waitid", "keyctl", "clone3", "clone", "socket"],
                                 "2026-01-02T00:00:00.000Z"))
    profile = store.read("web")
    profile["arch"] = X86_64
    found = {(f["syscall"], f["rule"]): f for f in lint(profile, ("exit_group",), ("clone3",))}
    assert set(found) == {("waitid", "kernel-cve"), ("keyctl", "kernel-cve"), ("keyctl", "docker-default-denies"),
                          ("clone3", "docker-default-needs-capability"), ("clone3", "never-allow")}
    assert found[("waitid", "kernel-cve")]["first"]["container_id"] == "c1"
    assert "run of c2 at 2026-01-02" in found[("keyctl", "kernel-cve")]["where"]
    # The run record no longer kept: first_seen is all there is.
    profile["runs"] = profile["runs"][1:]
    waitid = next(f for f in lint(profile) if f["syscall"] == "waitid")
    assert "container_id" not in waitid["first"] and "no longer kept" in waitid["where"]
    assert lint({**profile, "syscalls": {"read": profile["syscalls"]["read"]}}) == []


@pytest.fixture
def store_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ProfileStore:
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nstore = "{tmp_path}/store"\nrun_dir = "{tmp_path}/run"\n')
    monkeypatch.setenv("SYSCAGE_CONFIG", str(config))
    store = ProfileStore(tmp_path / "store", 1)
    store.record_run("small", _obs("c1", ["read", "write"]))
    store.record_run("risky", _obs("c2", ["read", "write", "keyctl"]))
    return store


def test_cli_exit_codes(store_env: ProfileStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "small", "--against", str(FIXTURE)]) == 0
    assert capsys.readouterr().out.startswith("ok: profile small allows nothing")
    assert cli.main(["check", "risky", "--against", str(FIXTURE)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL:") and "keyctl" in out and len(out.splitlines()) == 1
    assert cli.main(["check", "risky", "--against", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "no such file" in err
    (tmp_path / "junk.json").write_text("{")
    assert cli.main(["check", "small", "--against", str(tmp_path / "junk.json")]) == 2
    assert cli.main(["check", "nope", "--against", str(FIXTURE)]) == 2
    assert "no profile named nope" in capsys.readouterr().err
    assert cli.main(["diff", "small", "small"]) == 0
    capsys.readouterr()
    assert cli.main(["diff", "small", "risky", "--json"]) == 1
    assert [e["syscall"] for e in json.loads(capsys.readouterr().out)["only_b"]] == ["keyctl"]
    assert cli.main(["lint", "small"]) == 0
    assert "no findings" in capsys.readouterr().out
    assert cli.main(["lint", "risky", "--json"]) == 1
    assert {f["syscall"] for f in json.loads(capsys.readouterr().out)["findings"]} == {"keyctl"}
    assert cli.main(["lint", "nope"]) == 2


def test_every_help_has_examples() -> None:
    import argparse

    def walk(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, str]]:
        found = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found.append((f"{path} {name}", sub.format_help()))
                    found.extend(walk(sub, f"{path} {name}"))
        return found

    helps = walk(cli.build_parser(), "syscage")
    assert {"syscage diff", "syscage doctor", "syscage rm", "syscage install containerd"} <= {p for p, _ in helps}
    for path, text in helps:
        assert f"examples:\n  {path}" in text, path
