"""Profile names: validated, because annotations are written by whoever creates the container."""

from __future__ import annotations

import re
from typing import NamedTuple

from syscage.errors import SyscageError

PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_UNSAFE = re.compile(r"[^a-z0-9._-]+")

ANNOTATION_MODE = "io.syscage.mode"
NOTE_TAG = "syscage-denials-note"  # args[3] of the prestart hook that notes an enforced container's pid
ANNOTATION_PROFILE = "io.syscage.profile"
MODES = ("off", "learn", "enforce", "complain")
LEARNING_MODES = ("learn", "complain")  # the modes the tracer watches

# Kubernetes: which runtime puts what into the OCI spec (read from their sources).
# * containerd's CRI plugin writes io.kubernetes.cri.sandbox-namespace and io.kubernetes.cri.container-name;
#   a pod's own annotations reach the spec only through the pod_annotations allow-list.
# * CRI-O copies all of the pod's annotations into every container's spec first, then the kubelet's
#   labels (io.kubernetes.pod.namespace, io.kubernetes.container.name), so those overwrite anything the
#   pod set; the pod's sandbox also gets io.kubernetes.cri-o.Namespace, written after the pod's annotations.
# * cri-dockerd keeps Kubernetes metadata in Docker labels, which do not reach the OCI spec.
# A pod can therefore add any of these keys (CRI-O passes its annotations on) but never hide the one its
# runtime writes: keys that disagree mean somebody lied, and the container is refused.
K8S_NAMESPACE_KEYS = ("io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace",
                      "io.kubernetes.cri-o.Namespace")
K8S_CONTAINER_KEYS = ("io.kubernetes.cri.container-name", "io.kubernetes.container.name")
K8S_PREFIX = "io.kubernetes."
# podman (libpod) writes these two CRI-O keys into every container's spec, Kubernetes or not: they do not make
# a container a Kubernetes one. (A Kubernetes container always has its runtime's namespace key besides.)
LIBPOD_KEYS = frozenset({"io.kubernetes.cri-o.Created", "io.kubernetes.cri-o.TTY"})
K8S_NAMESPACE = K8S_NAMESPACE_KEYS[0]
K8S_CONTAINER = K8S_CONTAINER_KEYS[0]
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # what Kubernetes allows as a namespace


class KubernetesIdentity(NamedTuple):
    """Who a container is in Kubernetes, from its annotations."""

    kubernetes: bool  # any io.kubernetes.* annotation
    namespace: str | None  # from a key its runtime writes; None if there is none
    container: str | None


def kubernetes_identity(annotations: dict[str, str], container_id: str = "") -> KubernetesIdentity:
    """Raises when the namespace (or container name) keys disagree, or a namespace is no DNS label."""
    def one(keys: tuple[str, ...], what: str) -> str | None:
        values = {annotations[k] for k in keys if k in annotations}
        if len(values) > 1:
            shown = ", ".join(f"{k}={_shorten(annotations[k], 40)}" for k in keys if k in annotations)
            raise SyscageError(f"container {_shorten(container_id, 40)} has conflicting Kubernetes {what} "
                               f"annotations ({shown})", "refused: one of them was not set by the runtime")
        return values.pop() if values else None

    kubernetes = any(k.startswith(K8S_PREFIX) and k not in LIBPOD_KEYS for k in annotations)
    namespace = one(K8S_NAMESPACE_KEYS, "namespace")
    if namespace is not None and _DNS_LABEL.fullmatch(namespace) is None:
        raise SyscageError(f"container {_shorten(container_id, 40)} has an invalid Kubernetes namespace "
                           f"{_shorten(namespace, 40)}", "a namespace is a DNS label (a-z, 0-9, '-')")
    return KubernetesIdentity(kubernetes, namespace, one(K8S_CONTAINER_KEYS, "container name"))


def validate_profile_name(name: object) -> str:
    """Return the name if it is a valid profile name; raise with a readable reason otherwise."""
    if not isinstance(name, str):
        raise SyscageError(f"profile name must be a string, got {type(name).__name__}", _NAME_HINT)
    if PROFILE_NAME.fullmatch(name) is None or name in (".", ".."):
        raise SyscageError(f"invalid profile name {_shorten(name)}", _NAME_HINT)
    return name


def default_profile_name(container_id: str, annotations: dict[str, str]) -> str:
    """The profile used when io.syscage.profile is absent.

    Kubernetes containers get `k8s.<namespace>.<container-name>` (stable across pod restarts and
    replicas, so every replica learns into one profile; a pod's sandbox, which has no container name,
    `k8s.<namespace>.<container id>`); anything else gets its container id. Lower-cased, with unsafe
    characters replaced by '-'.
    """
    k8s = kubernetes_identity(annotations, container_id)
    prefix = f"k8s.{k8s.namespace}." if k8s.namespace else ""
    rest = _UNSAFE.sub("-", (k8s.container if prefix and k8s.container else container_id).lower())
    cleaned = (prefix + rest).lstrip("._-")[:128] if rest.strip("._-") else ""
    if not cleaned:
        raise SyscageError(f"cannot derive a profile name from container id {_shorten(container_id)}",
                           f"set the {ANNOTATION_PROFILE} annotation")
    return validate_profile_name(cleaned)


def parse_mode(value: object) -> str:
    if value is None:
        return "off"
    if not isinstance(value, str) or value not in MODES:
        raise SyscageError(f"invalid {ANNOTATION_MODE} annotation {_shorten(str(value))}",
                           f"use one of {', '.join(MODES)}")
    return value


_NAME_HINT = "use 1-128 characters from a-z, 0-9, '.', '_', '-', starting with a letter or digit"


def _shorten(value: str, limit: int = 60) -> str:
    shown = repr(value[:limit])
    return shown + f"... ({len(value)} characters)" if len(value) > limit else shown
