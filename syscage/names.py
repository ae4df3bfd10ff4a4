"""Profile names: validated, because annotations are written by whoever creates the container."""

from __future__ import annotations

import re

from syscage.errors import SyscageError

PROFILE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}")
_UNSAFE = re.compile(r"[^a-z0-9._-]+")

ANNOTATION_MODE = "io.syscage.mode"
ANNOTATION_PROFILE = "io.syscage.profile"
MODES = ("off", "learn", "enforce", "complain")
LEARNING_MODES = ("learn", "complain")  # the modes the tracer watches

# Kubernetes (CRI) annotations that identify a container across restarts and replicas.
K8S_NAMESPACE = "io.kubernetes.cri.sandbox-namespace"
K8S_CONTAINER = "io.kubernetes.cri.container-name"
K8S_POD = "io.kubernetes.cri.sandbox-name"


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
    replicas, so every replica learns into one profile); anything else gets its container id,
    lower-cased with unsafe characters replaced by '-'.
    """
    namespace, container = annotations.get(K8S_NAMESPACE), annotations.get(K8S_CONTAINER)
    candidate = f"k8s.{namespace}.{container}" if namespace and container else container_id
    cleaned = _UNSAFE.sub("-", candidate.lower()).lstrip("._-")[:128]
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
