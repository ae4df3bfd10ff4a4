"""A tracer report's AppArmor part becomes the profile's files, network and capabilities sections."""

from __future__ import annotations

import socket

from syscage.apparmor import CAPABILITIES, FAMILIES, SOCK_TYPES
from syscage.hooks.daemon.observe import CAPABILITY_NAMES, FAMILY_NAMES, SOCK_TYPE_NAMES, observation_from_report
from syscage.profile import Observation, merge, new_profile


def report(**extra: object) -> dict[str, object]:
    base = {"syscalls": [0, 1], "pre_exec": [], "counters": {"cutover_seccomp": 1}, "compat": {},
            "files": {"/etc/hostname": ["r"], "/tmp/out": ["c", "w"]}, "sockets": [[2, 1], [1, 2]],
            "capabilities": [], "capabilities_traced": False, "started": "t0"}
    return {**base, **extra}


def test_names_are_the_renderers_and_in_kernel_order() -> None:
    assert set(FAMILY_NAMES) - {"-"} == FAMILIES
    for family in ("unix", "inet", "inet6", "netlink", "packet", "alg", "vsock"):
        assert FAMILY_NAMES[getattr(socket, f"AF_{family.upper()}") - 1] == family
    assert set(CAPABILITY_NAMES) == CAPABILITIES
    assert CAPABILITY_NAMES.index("net_raw") == 13 and CAPABILITY_NAMES.index("sys_admin") == 21
    assert set(SOCK_TYPE_NAMES.values()) == SOCK_TYPES


def test_report_becomes_sections_and_files_are_not_trusted_yet() -> None:
    obs = observation_from_report("c1", report(), "runc", "runc")
    assert obs.files == {"/etc/hostname": ["r"], "/tmp/out": ["w", "c"]}
    assert obs.network == ["inet stream", "unix dgram"] and obs.network_traced
    assert not obs.files_traced  # symlinks are not resolved yet
    assert not obs.capabilities_traced and obs.capabilities == []
    assert obs.complete


def test_a_socket_kind_apparmor_cannot_name_leaves_network_untraced() -> None:
    obs = observation_from_report("c1", report(sockets=[[2, 1], [2, 6]]), "runc", "runc")  # SOCK_DCCP
    assert obs.network == ["inet stream"] and not obs.network_traced
    assert not observation_from_report("c1", report(sockets=[[12, 1]]), "runc", "runc").network_traced  # DECnet
    assert not observation_from_report("c1", report(sockets=[[47, 1]]), "runc", "runc").network_traced
    obs = observation_from_report("c1", report(counters={"cutover_seccomp": 1, "sockets_out_of_range": 1}),
                                  "runc", "runc")
    assert not obs.network_traced


def test_capabilities_only_when_traced() -> None:
    obs = observation_from_report("c1", report(capabilities=[0, 13], capabilities_traced=True), "runc", "runc")
    assert obs.capabilities == ["chown", "net_raw"] and obs.capabilities_traced
    obs = observation_from_report("c1", report(capabilities=[0], capabilities_traced=True,
                                               counters={"cutover_seccomp": 1, "caps_out_of_range": 2}),
                                  "runc", "runc")
    assert not obs.capabilities_traced


def test_an_old_report_without_sections_traces_nothing() -> None:
    old = report()
    for key in ("files", "sockets", "capabilities", "capabilities_traced"):
        del old[key]
    obs = observation_from_report("c1", old, "runc", "runc")
    assert obs.files == {} and not (obs.files_traced or obs.network_traced or obs.capabilities_traced)


def obs(cid: str, when: str, *, network: list[str], traced: bool, files: dict[str, list[str]] | None = None,
        caps: list[str] | None = None) -> Observation:
    return Observation(container_id=cid, started=when, stopped=when, cutover="seccomp", syscalls=["read"],
                       files=files or {}, network=network, network_traced=traced, capabilities=caps or [],
                       capabilities_traced=traced)


def test_merge_unions_sections_and_ands_the_traced_flags() -> None:
    p = merge(new_profile("p", "x86_64", "t0"), obs("a", "t1", network=["inet stream"], traced=True,
                                                    files={"/x": ["r"]}, caps=["chown"]), "t1")
    assert p["network_traced"] and p["capabilities_traced"] and not p["files_traced"]
    assert p["network"]["inet stream"] == {"first_run": "a", "first_seen": "t1", "runs": 1}
    p = merge(p, obs("b", "t2", network=["inet stream", "unix dgram"], traced=True, files={"/x": ["w"]}), "t2")
    assert p["network"]["inet stream"]["runs"] == 2 and p["network"]["unix dgram"]["first_run"] == "b"
    assert p["files"]["/x"]["access"] == ["r", "w"] and p["files"]["/x"]["first_run"] == "a"
    assert p["network_traced"]
    assert "files" not in p["runs"][0] and p["runs"][0]["network_traced"] is True
    p = merge(p, obs("c", "t3", network=[], traced=False), "t3")
    assert not p["network_traced"] and not p["capabilities_traced"]
    p = merge(p, obs("d", "t4", network=[], traced=True), "t4")
    assert not p["network_traced"]  # once a run could not trace, the union stays unreliable


def test_a_profile_learned_before_the_sections_existed_stays_untraced() -> None:
    old = merge(new_profile("p", "x86_64", "t0"), obs("a", "t1", network=[], traced=False), "t1")
    for flag in ("files_traced", "network_traced", "capabilities_traced"):
        del old[flag]
    p = merge(old, obs("b", "t2", network=["inet stream"], traced=True), "t2")
    assert not p["network_traced"]
