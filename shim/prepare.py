"""The wrapper's slow path: a create/run of an annotated container. Read the spec, decide (the mode's plan
of modifiers, and for a learner its LearningCreate), then write the spec back atomically, or refuse with
one clear line."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from syscage.config import KERNEL_ASYNCHRONOUS, Config, load_config
from syscage.errors import SyscageError
from syscage.jsonlog import JsonLog
from syscage.names import ANNOTATION_MODE, LEARNING_MODES
from syscage.oci import Selection, load_json_doc, select, spec_annotations
from syscage.shim import ownfilter
from syscage.shim.learning import LearningCreate, RuntimeLog
from syscage.shim.modifiers import (
    Modifier,
    apply,
    drop_syscage_hooks,
    ensure_filter_load,
    set_apparmor,
    set_seccomp,
)


class Unenforceable(SyscageError):
    """Enforce was asked for, but the profile cannot be used as it is."""


class Incompatible(Unenforceable):
    """The profile exists, but cannot be combined with this container's spec (its own filter, or its
    noNewPrivileges): complain mode refuses too, instead of learning from scratch."""


class CreateRequest(NamedTuple):
    """A `create` or `run` of a bundle that may ask for syscage, as syscage-runtime read it: the bundle and its
    config.json's bytes, the container id, the runtime's --log and --log-format (where the runtime writes
    its errors: a refusal goes there too), the learning marker (see LearningCreate) and the runtime's --root."""

    bundle: str
    raw: bytes
    container_id: str | None
    runtime_log: str | None = None
    runtime_log_format: str | None = None
    marker: str | None = None
    runtime_root: str | None = None


class NotConverged(SyscageError):
    """convergence.on_enforce = refuse and learning has not converged. Not an Unenforceable: it never falls
    back to running without the profile (enforce.on_missing_profile = allow); the create fails."""


class Prepared(NamedTuple):
    """What prepare_bundle did: a refusal's exit code, or 0; for a learning `create` whose run is recorded
    at `delete`, serve(runtime, args) runs the runtime (LearningCreate.serve)."""

    code: int
    serve: Callable[[str, list[str]], int] | None = None


class Decision(NamedTuple):
    """What is to be done to one spec, decided before anything is written."""

    modifiers: list[Modifier]
    plan: Plan
    own: tuple[bool, dict[str, Any] | None]  # what ownfilter.recall() found


def prepare_bundle(request: CreateRequest) -> Prepared:
    """Rewrite bundle/config.json for the annotated mode, or refuse with one line."""
    bundle, cid = request.bundle, request.container_id or "?"
    tell = RuntimeLog(cid, request.runtime_log, request.runtime_log_format)
    try:
        config, spec, selection = read_request(request, cid)
    except SyscageError as exc:
        # Without the annotation we are here only to clear what an earlier run left: never refuse then.
        return refuse(str(exc), tell) if ANNOTATION_MODE.encode() in request.raw else Prepared(0)
    log = JsonLog.of(config, "runtime", container_id=cid, profile=selection.profile, mode=selection.mode)
    learning = (LearningCreate(config, selection, cid, request.marker, request.runtime_root, tell, log)
                if selection.mode in LEARNING_MODES else None)
    try:
        decision = decide(request, spec, selection, config, log, learning)
    except SyscageError as exc:
        log.error("container refused", error=str(exc))
        return refuse(str(exc), tell, learning)
    except (AttributeError, TypeError) as exc:  # e.g. "process": null
        return refuse(f"{bundle}/config.json has a malformed section ({exc})", tell, learning)
    off = selection.mode == "off"  # leftovers of an earlier run do nothing once syscage is off: never refuse
    try:
        changed = write_spec(bundle, spec, decision)
    except (AttributeError, TypeError) as exc:  # e.g. "hooks": null, or hooks.prestart not a list
        return Prepared(0) if off else refuse(f"{bundle}/config.json has a malformed section ({exc})", tell, learning)
    except OSError as exc:
        if off:
            log.warning("could not clear the bundle of an earlier syscage run", bundle=bundle, error=str(exc))
            return Prepared(0)
        return refuse(f"cannot rewrite {bundle}/config.json: {exc}", tell, learning)
    if off:
        if changed:
            log.info("bundle cleared of an earlier syscage run (hooks, filter)", bundle=bundle)
        return Prepared(0)
    log.info("spec prepared", bundle=bundle,
             modifiers=[getattr(m, "__qualname__", str(m)) for m in decision.modifiers],
             run_recorded_at=learning.recorded_at if learning else "poststop hook",
             prestart=None if learning is None else "relay" if learning.relay else "syscage-hook")
    # A learning create recorded at delete: the runtime runs as our child all the same (LearningCreate.serve).
    return Prepared(0, learning.serve if learning is not None and learning.marker else None)


def read_request(request: CreateRequest, cid: str) -> tuple[Config, dict[str, Any], Selection]:
    """The config, the spec and what its annotations ask for; SyscageError saying what is wrong."""
    config = load_config()
    spec = load_json_doc(request.raw, f"{request.bundle}/config.json", "fix the bundle")
    if not isinstance(spec, dict):
        raise SyscageError(f"{request.bundle}/config.json is not a JSON object", "fix the bundle")
    return config, spec, select(cid, spec_annotations(spec, cid))


def decide(request: CreateRequest, spec: dict[str, Any], selection: Selection, config: Config, log: Any,
           learning: LearningCreate | None) -> Decision:
    """The modifiers for this spec: hooks an earlier run of this bundle left (runc users reuse bundle
    directories) go first, then the mode's plan (with, under a profile, what `syscage denials` needs to find
    the container), then a learner's hooks for the spec as the plan leaves it."""
    own = ownfilter.recall(request.bundle, spec)
    plan = modifiers_for(selection, config, log, own, spec)
    modifiers = [drop_syscage_hooks, *plan.modifiers]
    if plan.replaces_filter and selection.profile:  # enforce or complain under a profile: see its denials
        from syscage.containernotes import note_modifiers

        modifiers += note_modifiers(config, request.container_id or "?", selection.profile, selection.mode,
                                    request.bundle, spec, request.runtime_root, log)
    if learning is not None:
        modifiers.append(learning.hooks(apply(spec, modifiers)))
    return Decision(modifiers, plan, own)


def write_spec(bundle: str, spec: dict[str, Any], decision: Decision) -> bool:
    """Apply the decision and write config.json back atomically if it changed (and whether it did)."""
    from syscage.atomic import write_atomically

    path = Path(bundle) / "config.json"
    new_spec = apply(spec, decision.modifiers)
    if new_spec == spec:
        return False
    if decision.plan.replaces_filter:
        ownfilter.remember(bundle, decision.own, spec, new_spec)
    # Compact: with indent, json encodes in pure Python (~10x slower on a containerd spec).
    write_atomically(path, json.dumps(new_spec).encode(), mode=os.stat(path).st_mode & 0o7777)
    if decision.plan.restores_own:
        ownfilter.forget(bundle)  # the bundle's own filter is back in config.json
    return True


class Plan(NamedTuple):
    """The spec modifiers of a mode (learning modes also get learn_hooks(), added by the caller)."""

    modifiers: list[Modifier]
    replaces_filter: bool = False  # puts a profile's filter in place of the bundle's (ownfilter.remember)
    restores_own: bool = False  # puts the bundle's own filter back (ownfilter.forget)


def modifiers_for(selection: Selection, config: Config, log: Any, own: tuple[bool, dict[str, Any] | None],
                  spec: dict[str, Any]) -> Plan:
    """own: what ownfilter.recall() found. Any mode that does not write a profile's filter puts the
    bundle's own back: it learns (or runs unconfined) under its own filter, not an earlier enforce's.
    A profile's filter is never put in place of the spec's own: it is intersected with it (syscage.compose)."""
    from syscage.oci import no_new_privileges

    known, own_filter = own
    # ...and any mode that does not confine by a profile takes off the AppArmor label an earlier one left.
    back = [*([set_seccomp(own_filter)] if known else []), *apparmor_modifiers(None, selection.mode, config, log, spec)]
    spec_filter = own_filter if known else current_filter(spec)
    if selection.mode == "off":
        return Plan(back, restores_own=known)
    if selection.mode == "enforce":
        try:
            profile = read_usable(selection.named, config)
            seccomp = enforceable_seccomp(selection.named, config, spec_filter, no_new_privileges(spec), log=log,
                                          profile=profile)
        except Unenforceable as exc:
            if config.on_missing_profile != "allow":
                raise
            log.warning("running UNCONFINED by the profile (the spec's own filter, if any, still applies): "
                        "enforce.on_missing_profile = allow", reason=str(exc))
            return Plan(back, restores_own=known)
        return Plan([set_seccomp(seccomp), *apparmor_modifiers(selection.named, "enforce", config, log, spec, profile)],
                    replaces_filter=True)
    plan = Plan([*back, ensure_filter_load], restores_own=known)  # learn, or complain with nothing to use yet
    if selection.mode == "complain":
        try:
            profile = read_usable(selection.named, config)
            seccomp = enforceable_seccomp(selection.named, config, spec_filter, no_new_privileges(spec), "complain",
                                          profile=profile)
        except Incompatible:
            raise
        except Unenforceable as exc:
            log.info("no usable profile yet; complain mode learns from scratch", reason=str(exc))
        else:
            plan = Plan([set_seccomp(seccomp),
                         *apparmor_modifiers(selection.named, "complain", config, log, spec, profile)],
                        replaces_filter=True)
    start_tracer_early(config)
    return plan


def current_filter(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The spec's linux.seccomp as it stands (None: no filter)."""
    linux = spec.get("linux")
    seccomp = linux.get("seccomp") if isinstance(linux, dict) else None
    return seccomp if isinstance(seccomp, dict) else None


def start_tracer_early(config: Config) -> None:
    from syscage.liveness import tracer_lock_held

    if tracer_lock_held(config.run_dir):
        return  # the usual case: running (or starting), and the client module is not even needed
    from syscage.hooks.client import start_tracer_in_background

    start_tracer_in_background(config)


def enforceable_seccomp(name: str, config: Config, spec_filter: dict[str, Any] | None = None,
                        nnp: bool | None = None, mode: str = "enforce", log: Any = None,
                        profile: dict[str, Any] | None = None) -> dict[str, Any]:
    """The filter for a container of `mode` ("enforce" or "complain") under profile `name`: the profile
    intersected with the spec's own filter `spec_filter`, so never looser than it; Unenforceable saying
    why not and what to do. nnp: the spec's noNewPrivileges (None: not checked). profile: usable_profile's
    answer when the caller has it already (modifiers_for reads it once for seccomp and AppArmor)."""
    from syscage.compose import DENY_LOG, CannotCompose, compose, deny_errno, is_trivial
    from syscage.seccomp import render, validate
    from syscage.store import ProfileStore

    store = ProfileStore.from_config(config)
    if profile is None:
        profile = usable_profile(store, name, config)
    if mode == "enforce":
        convergence_gate(profile, config, log)
    # An older profile may lack the floor and the kernel's asynchronous syscalls (restart_syscall); and
    # seccomp.coverage may add related or statically reachable syscalls (syscage.coverage).
    allowed = set(profile["syscalls"]) | set(config.always_allow) | set(KERNEL_ASYNCHRONOUS)
    if config.coverage != "learned":
        from syscage.coverage import additions

        allowed |= set(additions(profile, config.coverage))
    base = privileges_base(profile, nnp, config, mode) if nnp is not None else set()
    allowed |= base
    allowed -= set(config.never_allow)  # a profile learned before the config named them, or a base set
    # Argument conditions (syscage.arguments) for what the runs recorded; the floor and a base set the runs
    # did not observe allow any argument.
    from syscage.arguments import conditions

    conds = conditions(profile, frozenset(config.always_allow) | base, frozenset(config.never_allow))
    if mode == "enforce" and is_trivial(spec_filter):
        # The store compiled seccomp.json with libseccomp when it wrote it: if it is exactly this profile's
        # filter, use it and spare the start path libseccomp. Otherwise (errno changed in the
        # config since, a seccomp.json out of step, a floor the profile lacks) render and compile it now.
        expected = render(sorted(allowed), config.seccomp_errno, profile["arch"], conds)
        if store.read_seccomp(name) != expected:
            try:
                validate(expected, name)
            except SyscageError as exc:
                raise Unenforceable(f"enforce: {exc.what}", exc.hint) from None
        return expected
    deny = deny_errno(config.seccomp_errno) if mode == "enforce" else DENY_LOG
    try:
        return compose(spec_filter, allowed, deny, profile["arch"], conds)
    except CannotCompose as exc:
        raise Incompatible(f"{mode}: profile {name}: {exc.what}", exc.hint) from None


def apparmor_modifiers(name: str | None, mode: str, config: Config, log: Any, spec: dict[str, Any],
                       profile: dict[str, Any] | None = None) -> list[Modifier]:
    """The AppArmor part of a plan (apparmor.mode: auto, required or off; see syscage.apparmor_load).

    name: the profile confining the container in `mode` (enforce or complain); None when nothing confines it
    by a profile (learn, off, no usable profile), when only the label an earlier enforce of a reused bundle
    left (`syscage-*`) is taken off. With a name, the profile's AppArmor profile is loaded if it changed and
    named in process.apparmorProfile, stacked on the spec's own (never looser than the spec); on a kernel
    without AppArmor, `auto` says so in the log and leaves seccomp alone to confine, `required` refuses."""
    if config.apparmor_mode == "off":
        return []
    from syscage import apparmor_load as aa

    process = spec.get("process")
    current = process.get("apparmorProfile") if isinstance(process, dict) else None
    own = aa.own_label(current)
    keep_own = [] if own == (current or None) else [set_apparmor(own)]
    if name is None:
        return keep_own
    required = config.apparmor_mode == "required"
    why = aa.available()
    if why is None:
        from syscage.apparmor import render

        label = aa.label_for(name, mode)
        try:
            text = aa.for_mode(render(profile if profile is not None else read_usable(name, config)), name, mode)
            done = aa.ensure_loaded(text, label, mode, config.run_dir)
        except aa.ParserMissing as exc:
            if required:
                raise
            why = exc.what
        else:
            log.info("AppArmor profile in place", apparmor_profile=label, apparmor_loaded=done.loaded,
                     seconds=round(done.seconds, 4))
            return [set_apparmor(aa.stacked(label, own))]
    if required:
        raise SyscageError(f"{mode}: apparmor.mode = required, but {why}",
                           'run it on a kernel with AppArmor, or set apparmor.mode = "auto" in the config')
    log.info("no AppArmor here: the container is confined by seccomp only (apparmor.mode = auto)", reason=why)
    return keep_own


def convergence_gate(profile: dict[str, Any], config: Config, log: Any) -> None:
    """Enforce of a profile whose learning has not converged (syscage.convergence): a warning in the log, or
    with convergence.on_enforce = refuse, NotConverged (the create fails)."""
    from syscage.convergence import rule_of, state

    now = state(profile, rule_of(config))
    if now.converged:
        return
    if config.convergence_on_enforce == "refuse":
        raise NotConverged(f"enforce: profile {profile['name']} has not converged: {now.runs_since_new} run(s) since "
                           f"anything new, the rule is {now.rule.describe()} (convergence.on_enforce = refuse)",
                           f"learn it more (io.syscage.mode=learn), see `syscage show {profile['name']}`")
    if log is not None:
        log.warning("enforcing a profile whose learning has not converged: it may miss syscalls",
                    convergence=now.summary(), chance_dependent=[n for n, _ in now.chance])


def read_usable(name: str, config: Config) -> dict[str, Any]:
    """usable_profile from the configured store."""
    from syscage.store import ProfileStore

    return usable_profile(ProfileStore.from_config(config), name, config)


def usable_profile(store: Any, name: str, config: Config) -> dict[str, Any]:
    """The profile, complete and allowing something, or Unenforceable."""
    from syscage.liveness import live_instance

    learn_hint = "learn it first (io.syscage.mode=learn) or set enforce.on_missing_profile = \"allow\""
    try:
        profile: dict[str, Any] | None = store.read(name)
    except SyscageError as exc:
        raise Unenforceable(f"enforce: {exc.what}", exc.hint) from None
    if profile is None:
        raise Unenforceable(f"enforce: profile {name} does not exist in {config.profiles_dir}", learn_hint)
    if not profile["complete"]:
        # The reasons name other containers (perhaps other namespaces'): the operator reads them, not the pod.
        count = len(profile["incomplete_reasons"])
        raise Unenforceable(f"enforce: profile {name} is incomplete ({count} reason{'' if count == 1 else 's'}, "
                            f"shown by `syscage show {name}`)",
                            f"learn again, or vouch for it with `syscage accept {name}`")
    if store.lost_pending(name, live_instance(config.run_dir)):  # a learning run that will never be recorded
        raise Unenforceable(f"enforce: profile {name} is incomplete (a learning run of it was lost)",
                            f"see `syscage show {name}`; learn again, or vouch for it with `syscage accept {name}`")
    if not profile["syscalls"]:
        raise Unenforceable(f"enforce: profile {name} allows no syscalls at all", learn_hint)
    return profile


def privileges_base(profile: dict[str, Any], nnp: bool, config: Config, mode: str) -> set[str]:
    """runc loads the filter earlier without noNewPrivileges, and makes more syscalls under it (setuid,
    capset, ...). A profile whose runs never had this container's value gets the runtime's measured base
    set for it (config/base/RUNTIME.json, RUNTIME the basename of runtime.path)."""
    seen = {run.get("no_new_privileges") for run in profile["runs"]}
    if nnp in seen:
        return set()
    from syscage.runtimebase import runtime_base

    runtime = config.runtime_path.name
    base = runtime_base(runtime)
    if base is None:
        if mode == "enforce" and seen - {None}:  # known never to have run so; older profiles did not record it
            value = str(nnp).lower()
            raise Incompatible(f"enforce: profile {profile['name']} was learned only with process.noNewPrivileges "
                               f"other than {value}, this container's, and runtime {runtime} has no measured base "
                               "set for the difference",
                               f"learn with noNewPrivileges = {value} too (io.syscage.mode=learn or complain)")
        return set()
    return set(base["no_new_privileges" if nnp else "new_privileges"]) | set(base["asynchronous"])


def refuse(message: str, tell: RuntimeLog, learning: LearningCreate | None = None) -> Prepared:
    """One line on stderr and in the runtime's log; what a learning create left (its marker, its relay) is
    taken back: the container will not exist."""
    if learning is not None:
        learning.abandon()
    tell.error(message)
    return Prepared(1)
