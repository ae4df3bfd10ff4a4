"""The parts of the OCI runtime spec and hook state that syscage reads, validated."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from syscage.errors import SyscageError
from syscage.names import (
    ANNOTATION_MODE,
    ANNOTATION_PROFILE,
    K8S_NAMESPACE_KEYS,
    LEARNING_MODES,
    default_profile_name,
    kubernetes_identity,
    parse_mode,
    validate_profile_name,
)

MAX_STATE_BYTES = 1 << 20  # a hook state is a few hundred bytes; refuse anything absurd


class HookState(NamedTuple):
    """OCI state as a runtime writes it on a hook's stdin."""

    container_id: str
    bundle: Path
    status: str
    pid: int | None
    annotations: dict[str, str]


class Selection(NamedTuple):
    """What the annotations ask syscage to do with a container."""

    mode: str
    profile: str | None
    profile_defaulted: bool = False

    @property
    def named(self) -> str:
        """The profile of a mode that has one (every mode but off: select() names it)."""
        if self.profile is None:
            raise SyscageError(f"mode {self.mode} names no profile", "use a mode other than off")
        return self.profile


def load_json_doc(raw: bytes | str, what: str, hint: str) -> Any:
    """json.loads for untrusted documents: anything that is not JSON, including nesting too deep for the
    parser (a RecursionError), raises one SyscageError naming `what`."""
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SyscageError(f"{what} is not valid JSON ({exc})", hint) from None
    except RecursionError:
        raise SyscageError(f"{what} is nested too deeply to be parsed", hint) from None


def parse_hook_state(raw: bytes) -> HookState:
    if len(raw) > MAX_STATE_BYTES:
        raise SyscageError(f"hook state on stdin is {len(raw)} bytes", "a runtime sends a small JSON object")
    if not raw.strip():
        raise SyscageError("no hook state on stdin", "syscage-hook must be run by an OCI runtime as a hook")
    doc = load_json_doc(raw, "hook state on stdin", "syscage-hook must be run by an OCI runtime as a hook")
    if not isinstance(doc, dict):
        raise SyscageError("hook state on stdin is not a JSON object", "expected the OCI state object")
    cid = doc.get("id")
    if not isinstance(cid, str) or not cid or len(cid) > 1024 or "\0" in cid:
        raise SyscageError("hook state has no valid container id", "expected the OCI state object")
    bundle = doc.get("bundle")
    if not isinstance(bundle, str) or not bundle.startswith("/"):
        raise SyscageError(f"hook state for {cid} has no absolute bundle path", "expected the OCI state object")
    pid = doc.get("pid")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid < 0):
        raise SyscageError(f"hook state for {cid} has an invalid pid {pid!r}", "expected the OCI state object")
    status = doc.get("status", "")
    annotations = doc.get("annotations") or {}
    if not isinstance(status, str):
        raise SyscageError(f"hook state for {cid} has an invalid status", "expected the OCI state object")
    return HookState(cid, Path(bundle), status, pid or None, _string_map(annotations, cid))


def load_spec(bundle: Path) -> dict[str, Any]:
    path = bundle / "config.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SyscageError(f"no config.json in bundle {bundle}", "is the bundle path right?") from None
    except OSError as exc:
        raise SyscageError(f"cannot read {path}: {exc}", "check the bundle's permissions") from None
    spec = load_json_doc(raw, str(path), "fix the bundle's config.json")
    if not isinstance(spec, dict):
        raise SyscageError(f"{path} is not a JSON object", "fix the bundle's config.json")
    return spec


def spec_annotations(spec: dict[str, Any], container_id: str = "") -> dict[str, str]:
    return _string_map(spec.get("annotations") or {}, container_id or "spec")


def select(container_id: str, annotations: dict[str, str]) -> Selection:
    """Mode and profile name from the annotations; a learner without a profile gets the documented default."""
    mode = parse_mode(annotations.get(ANNOTATION_MODE))
    if mode == "off":
        return Selection("off", None)
    k8s = kubernetes_identity(annotations, container_id)
    learning = mode in LEARNING_MODES
    if learning and k8s.kubernetes and k8s.namespace is None:
        # Kubernetes, but not from a runtime we know: we cannot tell which namespace's profiles it may touch.
        raise SyscageError(f"container {container_id[:64]!r} has io.kubernetes.* annotations but none of "
                           f"{', '.join(K8S_NAMESPACE_KEYS)}, so its namespace is unknown",
                           f"it may not learn (io.syscage.mode={mode}); run it under containerd's CRI or CRI-O")
    named = annotations.get(ANNOTATION_PROFILE)
    if named is not None:
        name = validate_profile_name(named)
        namespace = k8s.namespace
        # A pod may only learn into its own namespace's profiles: learning into another team's
        # profile would widen what that team's containers are allowed to do.
        if learning and namespace and not name.startswith(f"k8s.{namespace}."):
            raise SyscageError(f"profile {name} is outside namespace {namespace}",
                               f"a Kubernetes container can learn only into profiles named k8s.{namespace}.*")
        return Selection(mode, name)
    return Selection(mode, default_profile_name(container_id, annotations), profile_defaulted=True)


def has_seccomp(spec: dict[str, Any]) -> bool:
    linux = spec.get("linux")
    return isinstance(linux, dict) and isinstance(linux.get("seccomp"), dict)


def no_new_privileges(spec: dict[str, Any]) -> bool:
    process = spec.get("process")
    return isinstance(process, dict) and bool(process.get("noNewPrivileges"))


def _string_map(value: object, cid: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise SyscageError(f"annotations of {cid} are not a map of strings", "fix the container's annotations")
    return dict(value)
