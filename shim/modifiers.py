"""Spec modifiers: small `spec -> spec` functions, chosen from the mode and applied in order.

Each returns a new spec and never mutates its input, so each can be tested alone and a failure
part-way leaves nothing half-applied. They copy only the section they change (the rest is shared with
the input): a deep copy of a whole spec, per modifier, was a measurable part of the wrapper's start path.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

Spec = dict[str, Any]
Modifier = Callable[[Spec], Spec]

HOOK_PHASES = ("prestart", "poststop")
# Where set_seccomp keeps the bundle's own linux.seccomp (JSON; "null" for none), the first time it replaces it.
ANNOTATION_OWN_SECCOMP = "io.syscage.own-seccomp"


def _with_section(spec: Spec, key: str) -> tuple[Spec, dict[str, Any]]:
    """A shallow copy of `spec` whose `key` object is a fresh copy, returned for the caller to change."""
    section = spec.get(key, {})
    if not isinstance(section, dict):
        raise TypeError(f"'{key}' is not an object")
    out = dict(spec)
    out[key] = dict(section)
    return out, out[key]


def _with_hook_list(spec: Spec, phase: str) -> tuple[Spec, list[Any]]:
    out, hooks = _with_section(spec, "hooks")
    entries = hooks.get(phase, [])
    if not isinstance(entries, list):
        raise TypeError(f"'hooks.{phase}' is not a list")
    hooks[phase] = list(entries)
    return out, hooks[phase]


def add_learn_hooks(hook_path: str, timeout: int, env: list[str], phases: tuple[str, ...] = HOOK_PHASES,
                    prestart_args: tuple[str, ...] = ()) -> Modifier:
    """Add syscage-hook as a prestart and a poststop hook, or as the given ones (once, however often it
    is applied); prestart_args follow the phase in the prestart hook's arguments."""
    def modify(spec: Spec) -> Spec:
        out = spec
        for phase in phases:
            out, entries = _with_hook_list(out, phase)
            if any(h.get("path") == hook_path and phase in h.get("args", []) for h in entries):
                continue
            args = ["syscage-hook", phase, *(prestart_args if phase == "prestart" else ())]
            entry: dict[str, Any] = {"path": hook_path, "args": args, "timeout": timeout}
            if env:
                entry["env"] = list(env)
            entries.append(entry)
        return out
    return modify


def add_hook(phase: str, entry: dict[str, Any]) -> Modifier:
    """Append one hook entry to a phase."""
    def modify(spec: Spec) -> Spec:
        out, entries = _with_hook_list(spec, phase)
        entries.append(copy.deepcopy(entry))
        return out
    return modify


def ensure_filter_load(spec: Spec) -> Spec:
    """Learning cuts over where the runtime loads the container's filter: make sure there is one.

    An existing filter is kept (what it denies is never seen and stays denied); without one, an
    allow-all filter restricts nothing but gives the tracer its exact cut-over point.
    """
    out, linux = _with_section(spec, "linux")
    if isinstance(linux.get("seccomp"), dict):
        return spec
    linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW"}
    return out


def set_seccomp(seccomp: dict[str, Any]) -> Modifier:
    """Replace linux.seccomp with the profile's filter. The bundle's own filter is kept in an annotation the
    first time, so that a bundle used again to learn (runc users reuse bundle directories) learns under its
    own filter, not under the one an earlier enforce wrote into it (see restore_own_seccomp)."""
    def modify(spec: Spec) -> Spec:
        out, linux = _with_section(spec, "linux")
        out, notes = _with_section(out, "annotations")
        notes.setdefault(ANNOTATION_OWN_SECCOMP, json.dumps(linux.get("seccomp"), sort_keys=True))
        linux["seccomp"] = copy.deepcopy(seccomp)
        return out
    return modify


def restore_own_seccomp(spec: Spec) -> Spec:
    """Undo what set_seccomp wrote into this bundle on an earlier run: put its own filter back."""
    notes = spec.get("annotations")
    if not isinstance(notes, dict) or ANNOTATION_OWN_SECCOMP not in notes:
        return spec
    try:
        own = json.loads(notes[ANNOTATION_OWN_SECCOMP])
    except (TypeError, ValueError):
        own = False
    if own is not None and not isinstance(own, dict):
        raise TypeError(f"annotation {ANNOTATION_OWN_SECCOMP} is not a JSON object or null")
    out, linux = _with_section(spec, "linux")
    out, notes = _with_section(out, "annotations")
    del notes[ANNOTATION_OWN_SECCOMP]
    if not notes:
        del out["annotations"]  # as set_seccomp found it (an empty map means the same to a runtime)
    if own is None:
        linux.pop("seccomp", None)
    else:
        linux["seccomp"] = own
    return out


def complain_filter(seccomp: dict[str, Any]) -> dict[str, Any]:
    """The profile's filter, but what it would deny is logged by the kernel and allowed."""
    out = copy.deepcopy(seccomp)
    out["defaultAction"] = "SCMP_ACT_LOG"
    out.pop("defaultErrnoRet", None)
    return out


def apply(spec: Spec, modifiers: list[Modifier]) -> Spec:
    for modify in modifiers:
        spec = modify(spec)
    return spec
