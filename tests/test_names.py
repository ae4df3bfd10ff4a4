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
