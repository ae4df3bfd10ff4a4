from __future__ import annotations

import pytest

from syscage.errors import SyscageError
from syscage.names import default_profile_name, parse_mode, validate_profile_name
from syscage.oci import select


@pytest.mark.parametrize("name", ["web", "a", "nginx-1.25_prod", "0abc", "x" * 128])
def test_valid_names(name: str) -> None:
    assert validate_profile_name(name) == name


@pytest.mark.parametrize("name", ["", "..", ".hidden", "../../etc", "/etc/passwd", "a/b", "a\0b", "UPPER",
                                  "x" * 129, "x" * 10_000, "sp ace", "ünï", "-dash", 5, None])
def test_hostile_names_are_refused(name: object) -> None:
    with pytest.raises(SyscageError) as exc:
        validate_profile_name(name)
    assert len(str(exc.value)) < 300  # a 10 kB name is not echoed back whole


def test_default_name_for_kubernetes_and_plain_containers() -> None:
    k8s = {"io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.container-name": "Web_API"}
    assert default_profile_name("abc123", k8s) == "k8s.shop.web_api"
    assert default_profile_name("My/Container:1", {}) == "my-container-1"
    with pytest.raises(SyscageError):
        default_profile_name("///", {})


def test_select() -> None:
    assert select("c", {}).mode == "off"
    chosen = select("c1", {"io.syscage.mode": "learn"})
    assert (chosen.mode, chosen.profile, chosen.profile_defaulted) == ("learn", "c1", True)
    assert select("c", {"io.syscage.mode": "enforce", "io.syscage.profile": "web"}).profile == "web"
    with pytest.raises(SyscageError, match=r"invalid io\.syscage\.mode"):
        parse_mode("LEARN")


def test_kubernetes_container_learns_only_into_its_namespace() -> None:
    k8s = {"io.kubernetes.cri.sandbox-namespace": "team-a", "io.kubernetes.cri.container-name": "web",
           "io.syscage.mode": "learn"}
    assert select("c", {**k8s, "io.syscage.profile": "k8s.team-a.api"}).profile == "k8s.team-a.api"
    with pytest.raises(SyscageError, match="outside namespace team-a"):
        select("c", {**k8s, "io.syscage.profile": "k8s.team-b.api"})
    with pytest.raises(SyscageError, match="outside namespace"):
        select("c", {**k8s, "io.syscage.mode": "complain", "io.syscage.profile": "shared"})
    # Enforcing someone else's profile only restricts the pod itself.
    assert select("c", {**k8s, "io.syscage.mode": "enforce", "io.syscage.profile": "k8s.team-b.api"}).mode == "enforce"


# What CRI-O writes into a container's spec (internal/factory/container: the pod's annotations, then the
# kubelet's labels) and into its pod sandbox's (io.kubernetes.cri-o.Namespace as well).
CRIO = {"io.kubernetes.pod.namespace": "attacker", "io.kubernetes.container.name": "web",
        "io.kubernetes.pod.name": "web-7d9", "io.kubernetes.cri-o.ContainerType": "container"}


def test_a_cri_o_container_learns_only_into_its_namespace() -> None:
    learn = {**CRIO, "io.syscage.mode": "learn"}
    with pytest.raises(SyscageError, match="outside namespace attacker"):
        select("c", {**learn, "io.syscage.profile": "k8s.victim.web"})
    assert select("c", {**learn, "io.syscage.profile": "k8s.attacker.api"}).profile == "k8s.attacker.api"
    sandbox = {"io.kubernetes.cri-o.Namespace": "attacker", "io.kubernetes.pod.namespace": "attacker",
               "io.kubernetes.cri-o.ContainerType": "sandbox", "io.syscage.mode": "complain"}
    with pytest.raises(SyscageError, match="outside namespace attacker"):
        select("c", {**sandbox, "io.syscage.profile": "k8s.victim.web"})


def test_cri_o_containers_get_the_kubernetes_default_name() -> None:
    chosen = select("0123abc", {**CRIO, "io.syscage.mode": "learn"})
    assert (chosen.profile, chosen.profile_defaulted) == ("k8s.attacker.web", True)
    # A pod sandbox has no container name: it stays inside its namespace all the same.
    sandbox = {"io.kubernetes.cri-o.Namespace": "shop", "io.kubernetes.pod.namespace": "shop"}
    assert default_profile_name("F00D/1", sandbox) == "k8s.shop.f00d-1"
    assert default_profile_name("abc", {"io.kubernetes.cri.sandbox-namespace": "shop"}) == "k8s.shop.abc"


@pytest.mark.parametrize("mode", ["learn", "complain", "enforce"])
def test_conflicting_namespace_keys_are_refused(mode: str) -> None:
    # On CRI-O a pod can add containerd's key through its own annotations; the kubelet's label stays true.
    lying = {**CRIO, "io.kubernetes.cri.sandbox-namespace": "victim", "io.syscage.mode": mode}
    with pytest.raises(SyscageError, match="conflicting Kubernetes namespace") as exc:
        select("c", {**lying, "io.syscage.profile": "k8s.victim.web"})
    assert "\n" not in str(exc.value)
    with pytest.raises(SyscageError, match="conflicting Kubernetes namespace"):
        select("c", lying)  # the default name would be ambiguous too
    with pytest.raises(SyscageError, match="conflicting Kubernetes container name"):
        select("c", {**CRIO, "io.kubernetes.cri.container-name": "db", "io.syscage.mode": mode})
    assert select("c", {**lying, "io.syscage.mode": "off"}).mode == "off"


def test_kubernetes_without_a_known_namespace_key_may_not_learn() -> None:
    unknown = {"io.kubernetes.container.name": "web", "io.kubernetes.docker.type": "container"}
    for mode in ("learn", "complain"):
        with pytest.raises(SyscageError, match="namespace is unknown") as exc:
            select("c", {**unknown, "io.syscage.mode": mode, "io.syscage.profile": "k8s.victim.web"})
        assert "\n" not in str(exc.value)
        with pytest.raises(SyscageError, match="namespace is unknown"):
            select("c", {**unknown, "io.syscage.mode": mode})
    assert select("c", {**unknown, "io.syscage.mode": "enforce", "io.syscage.profile": "web"}).profile == "web"


def test_podman_containers_are_not_kubernetes_ones() -> None:
    """podman writes io.kubernetes.cri-o.Created and .TTY into every spec: such a container may learn."""
    podman = {"io.container.manager": "libpod", "io.kubernetes.cri-o.Created": "2026-12-01T04:12:50Z",
              "io.kubernetes.cri-o.TTY": "false", "io.syscage.mode": "learn", "io.syscage.profile": "web"}
    assert select("c", podman).profile == "web"
    with pytest.raises(SyscageError, match="namespace is unknown"):  # one key beyond podman's still counts
        select("c", {**podman, "io.kubernetes.container.name": "web"})


@pytest.mark.parametrize("namespace", ["victim.web", "", "UPPER", "a" * 64, "-a", "a/b"])
def test_a_namespace_that_kubernetes_would_not_allow_is_refused(namespace: str) -> None:
    with pytest.raises(SyscageError, match="invalid Kubernetes namespace"):
        select("c", {"io.kubernetes.pod.namespace": namespace, "io.syscage.mode": "learn",
                     "io.syscage.profile": f"k8s.{namespace}.x"})
