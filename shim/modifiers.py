"""Spec modifiers: small `spec -> spec` functions, chosen from the mode and applied in order.

Each returns a new spec and never mutates its input, so each can be tested alone and a failure
part-way leaves nothing half-applied. They copy only the section they change (the rest is shared with
the input): a deep copy of a whole spec, per modifier, was a measurable part of the wrapper's start path.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from syscage.arch import all_arches
from syscage.names import NOTE_TAG

Spec = dict[str, Any]
Modifier = Callable[[Spec], Spec]

HOOK_PHASES = ("prestart", "poststop")
HOOK_NAME = "syscage-hook"  # args[0] of every syscage-hook entry
RELAY_TAG = "syscage-prestart-relay"  # args[3] of a relay entry: sh -c SCRIPT TAG STATE VERDICT


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
                    prestart_args: tuple[str, ...] = (), poststop_args: tuple[str, ...] = ()) -> Modifier:
    """Add syscage-hook as a prestart and a poststop hook, or as the given ones (once, however often it
    is applied); prestart_args and poststop_args follow the phase in each hook's arguments."""
    def modify(spec: Spec) -> Spec:
        out = spec
        for phase in phases:
            out, entries = _with_hook_list(out, phase)
            if any(h.get("path") == hook_path and phase in h.get("args", []) for h in entries):
                continue
            args = [HOOK_NAME, phase, *(prestart_args if phase == "prestart" else poststop_args)]
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


def _is_syscage_hook(entry: object) -> bool:
    args = entry.get("args") if isinstance(entry, dict) else None
    return isinstance(args, list) and bool(args) and (args[0] == HOOK_NAME or args[3:4] in ([RELAY_TAG], [NOTE_TAG]))


def drop_syscage_hooks(spec: Spec) -> Spec:
    """Remove the hooks syscage wrote on an earlier run of this bundle: the wrapper adds what this run
    needs, and a stale relay hook names FIFOs that are gone."""
    hooks = spec.get("hooks")
    if not isinstance(hooks, dict):
        return spec
    stale = [phase for phase, entries in hooks.items()
             if isinstance(entries, list) and any(_is_syscage_hook(e) for e in entries)]
    if not stale:
        return spec
    out, kept = _with_section(spec, "hooks")
    for phase in stale:
        remaining = [e for e in hooks[phase] if not _is_syscage_hook(e)]
        if remaining:
            kept[phase] = remaining
        else:
            del kept[phase]
    if not kept:
        del out["hooks"]
    return out


def ensure_filter_load(spec: Spec) -> Spec:
    """Learning cuts over where the runtime loads the container's filter: make sure there is one.

    An existing filter is kept (what it denies is never seen and stays denied); without one, an
    allow-all filter restricts nothing but gives the tracer its exact cut-over point.
    """
    out, linux = _with_section(spec, "linux")
    if isinstance(linux.get("seccomp"), dict):
        return spec
    linux["seccomp"] = allow_all_filter()
    return out


def allow_all_filter() -> dict[str, Any]:
    """A filter that allows every syscall of every ABI the kernel runs. It must list the compat architectures
    (x86 and x32 on x86_64): libseccomp makes a filter without `architectures` native-only, and its bad-arch
    action kills a process making an i386 syscall (int 0x80), which no filter at all would have let run."""
    seccomp: dict[str, Any] = {"defaultAction": "SCMP_ACT_ALLOW"}
    arches = all_arches()
    if arches:
        seccomp["architectures"] = arches
    return seccomp


def set_seccomp(seccomp: dict[str, Any] | None) -> Modifier:
    """Replace linux.seccomp with `seccomp` (the profile's filter, or a bundle's own one put back); None
    removes it."""
    def modify(spec: Spec) -> Spec:
        out, linux = _with_section(spec, "linux")
        if seccomp is None:
            linux.pop("seccomp", None)
        else:
            linux["seccomp"] = copy.deepcopy(seccomp)
        return out
    return modify


def apply(spec: Spec, modifiers: list[Modifier]) -> Spec:
    for modify in modifiers:
        spec = modify(spec)
    return spec


def set_apparmor(label: str | None) -> Modifier:
    """Set process.apparmorProfile to `label` (the profile's AppArmor label, perhaps stacked on the spec's
    own); None removes it (the container then runs under whatever label the runtime itself has)."""
    def modify(spec: Spec) -> Spec:
        if spec.get("process", {}).get("apparmorProfile") == label:
            return spec
        out, process = _with_section(spec, "process")
        if label is None:
            process.pop("apparmorProfile", None)
        else:
            process["apparmorProfile"] = label
        return out
    return modify
