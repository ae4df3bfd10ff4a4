"""Property: whatever annotations a container carries, select() either refuses with one clean line or
returns a valid mode and profile name, and a learning Kubernetes container only ever gets a profile
inside its own namespace (10,000 generated annotation sets)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from syscage.errors import SyscageError
from syscage.names import K8S_CONTAINER_KEYS, K8S_NAMESPACE_KEYS, LEARNING_MODES, MODES, PROFILE_NAME
from syscage.oci import select

NAMESPACES = ["team-a", "team-b", "victim", "attacker", "", "Bad", "a.b", "a" * 64, "-x", "ns-1"]
NAMES = ["k8s.team-a.web", "k8s.team-b.web", "k8s.victim.web", "k8s.attacker.x", "k8s.a.b.web", "web", "..", ".x",
         "k8s.team-a.", "K8S.team-a.web", "x" * 129, "a/b", "k8s.ns-1.db"]
OTHER_K8S = ["io.kubernetes.pod.name", "io.kubernetes.cri-o.ContainerType", "io.kubernetes.docker.type",
             "io.kubernetes.cri.sandbox-id", "io.kubernetes.container.hash"]

texts = st.text(max_size=12)
annotation_sets = st.fixed_dictionaries({}, optional={
    "io.syscage.mode": st.one_of(st.sampled_from(MODES), st.sampled_from(["learn", "learn", "complain"]), texts),
    "io.syscage.profile": st.one_of(st.sampled_from(NAMES), texts),
    **{key: st.one_of(st.sampled_from(NAMESPACES), texts) for key in K8S_NAMESPACE_KEYS},
    **{key: st.one_of(st.sampled_from(["web", "db", "Web_API", "..", ""]), texts) for key in K8S_CONTAINER_KEYS},
    **{key: texts for key in OTHER_K8S},
    "unrelated": texts,
})
container_ids = st.one_of(st.sampled_from(["c1", "0123abcdef", "My/Container:1", "///", "", "x" * 300]), texts)


@settings(max_examples=10_000, deadline=None)
@given(container_ids, annotation_sets)
def test_select_refuses_cleanly_or_returns_a_valid_name_inside_the_namespace(cid: str, notes: dict[str, str]) -> None:
    try:
        chosen = select(cid, notes)
    except SyscageError as exc:
        message = str(exc)
        assert "\n" not in message and len(message) < 600, message
        return
    assert chosen.mode in MODES
    if chosen.mode == "off":
        assert chosen.profile is None
        return
    assert chosen.profile is not None and PROFILE_NAME.fullmatch(chosen.profile) and chosen.profile not in (".", "..")
    assert chosen.profile_defaulted == ("io.syscage.profile" not in notes)
    namespaces = {notes[k] for k in K8S_NAMESPACE_KEYS if k in notes}
    assert len(namespaces) <= 1  # keys that disagree are always refused
    if chosen.mode in LEARNING_MODES and any(k.startswith("io.kubernetes.") for k in notes):
        (namespace,) = namespaces  # Kubernetes without a known namespace key may not learn
        assert chosen.profile.startswith(f"k8s.{namespace}.")
        assert namespace and "." not in namespace
