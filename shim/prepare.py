"""The wrapper's slow path: a create/run of an annotated container. Decide the mode, build the
modifier list, apply it and write the spec back atomically, or refuse with one clear line."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from syscage.config import Config, load_config
from syscage.errors import SyscageError
from syscage.jsonlog import JsonLog
from syscage.names import ANNOTATION_MODE, LEARNING_MODES
from syscage.oci import Selection, load_json_doc, select, spec_annotations
from syscage.shim import ownfilter
from syscage.shim.modifiers import (
    HOOK_PHASES,
    Modifier,
    add_hook,
    add_learn_hooks,
    apply,
    drop_syscage_hooks,
    ensure_filter_load,
    set_apparmor,
    set_seccomp,
)
from syscage.shim.relay import PrestartRelay, open_relay, run_with_relay


class Unenforceable(SyscageError):
    """Enforce was asked for, but the profile cannot be used as it is."""


class Incompatible(Unenforceable):
    """The profile exists, but cannot be combined with this container's spec (its own filter, or its
    noNewPrivileges): complain mode refuses too, instead of learning from scratch."""


class Prepared(NamedTuple):
    """What prepare_bundle did: a refusal's exit code, or 0; for a learning `create` with a prestart relay,
    serve(runtime, args) runs the runtime and answers its hook (syscage.shim.relay.run_with_relay)."""

    code: int
    serve: Callable[[str, list[str]], int] | None = None


def prepare_bundle(bundle: str, raw: bytes, container_id: str | None, runtime_log: str | None,
                   runtime_log_format: str | None, marker: str | None = None,
                   runtime_root: str | None = None) -> Prepared:
    """Rewrite bundle/config.json for the annotated mode.

    marker: where a `create` leaves its learning marker, so that syscage-runtime's `delete` records the
    run and no poststop hook is needed (None for `run`, which deletes the container itself); such a
    `create` also gets the prestart relay (syscage.shim.relay) when it can be set up."""
    cid = container_id or "?"
    # Without the annotation we are here only to clear what an earlier run left: never refuse then.
    annotated = ANNOTATION_MODE.encode() in raw
    try:
        config = load_config()
        spec = load_json_doc(raw, f"{bundle}/config.json", "fix the bundle")
        if not isinstance(spec, dict):
            raise SyscageError(f"{bundle}/config.json is not a JSON object", "fix the bundle")
        selection = select(cid, spec_annotations(spec, cid))
    except ValueError as exc:
        return Prepared(refuse(f"{bundle}/config.json is not valid JSON ({exc})", cid, runtime_log,
                               runtime_log_format) if annotated else 0)
    except SyscageError as exc:
        return Prepared(refuse(str(exc), cid, runtime_log, runtime_log_format) if annotated else 0)
    log = JsonLog.of(config, "runtime", container_id=cid, profile=selection.profile, mode=selection.mode)
    nonce = os.urandom(8).hex()  # this create's own: the tracer hands its watch only to a record naming it
    marked = (selection.mode in LEARNING_MODES and marker is not None
              and leave_marker(marker, cid, runtime_root, selection, config, log, nonce))
    relay: PrestartRelay | None = None
    answer: Callable[[bytes], str | None] | None = None
    tell = RuntimeLog(cid, runtime_log, runtime_log_format)

    def refused(message: str) -> Prepared:
        if relay is not None:
            relay.close()
        return Prepared(refuse(message, cid, runtime_log, runtime_log_format, marker if marked else None))

    try:
        own = ownfilter.recall(bundle, spec)
        plan = modifiers_for(selection, config, log, own, spec)
        # Hooks an earlier run of this bundle left (runc users reuse bundle directories) go first.
        modifiers = [drop_syscage_hooks, *plan.modifiers]
        if plan.replaces_filter and selection.profile:  # enforce or complain under a profile: see its denials
            from syscage.containernotes import note_modifiers

            modifiers += note_modifiers(config, cid, selection.profile, selection.mode, bundle, spec, runtime_root, log)
        if selection.mode in LEARNING_MODES:
            hooks, relay, answer = learn_hooks(config, selection, cid, spec, modifiers, marked, tell, nonce)
            modifiers.append(hooks)
    except SyscageError as exc:
        log.error("container refused", error=str(exc))
        return refused(str(exc))
    except (AttributeError, TypeError) as exc:  # e.g. "process": null
        return refused(f"{bundle}/config.json has a malformed section ({exc})")
    from syscage.atomic import write_atomically

    path = Path(bundle) / "config.json"
    try:
        new_spec = apply(spec, modifiers)
        if new_spec != spec:
            if plan.replaces_filter:
                ownfilter.remember(bundle, own, spec, new_spec)
            # Compact: with indent, json encodes in pure Python (~10x slower on a containerd spec).
            write_atomically(path, json.dumps(new_spec).encode(), mode=os.stat(path).st_mode & 0o7777)
            if plan.restores_own:
                ownfilter.forget(bundle)  # the bundle's own filter is back in config.json
    except (AttributeError, TypeError) as exc:  # e.g. "hooks": null, or hooks.prestart not a list
        if selection.mode == "off":
            return Prepared(0)
        return refused(f"{bundle}/config.json has a malformed section ({exc})")
    except OSError as exc:
        if selection.mode == "off":  # leftovers of an earlier run do nothing once syscage is off
            log.warning("could not clear the bundle of an earlier syscage run", bundle=bundle, error=str(exc))
            return Prepared(0)
        return refused(f"cannot rewrite {path}: {exc}")
    if selection.mode == "off":
        if new_spec != spec:
            log.info("bundle cleared of an earlier syscage run (hooks, filter)", bundle=bundle)
        return Prepared(0)
    log.info("spec prepared", bundle=bundle, modifiers=[getattr(m, "__qualname__", str(m)) for m in modifiers],
             run_recorded_at="delete" if marked else "poststop hook",
             prestart="relay" if relay else "syscage-hook" if selection.mode in LEARNING_MODES else None)
    if relay is None or answer is None:
        # A learning create without the relay: the runtime runs as our child all the same, so that a create
        # failing after its prestart lets the tracer's watch go (syscage.shim.finish.release_failed_create).
        return Prepared(0, run_runtime if marked else None)
    return Prepared(0, functools.partial(run_with_relay, relay, answer, relay_missed(config, cid, runtime_root, tell)))


def run_runtime(runtime: str, args: list[str]) -> int:
    from syscage.shim.child import spawn_runtime, wait_runtime

    return wait_runtime(spawn_runtime(runtime, args))


def leave_marker(marker: str, container_id: str, runtime_root: str | None, selection: Selection, config: Config,
                 log: Any, nonce: str = "") -> bool:
    """The learning marker for `delete`; False (the spec then gets a poststop hook) if it cannot be written."""
    from syscage.hooks.record import record_timeout
    from syscage.shim.markers import write_marker

    assert selection.profile is not None
    try:
        write_marker(marker, container_id, runtime_root, selection.profile, selection.mode,
                     str(config.tracer_socket), record_timeout(config), nonce)
    except OSError as exc:
        log.warning("no learning marker; the run is recorded by a poststop hook", marker=marker, error=str(exc))
        return False
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
    assert selection.profile is not None
    if selection.mode == "enforce":
        try:
            seccomp = enforceable_seccomp(selection.profile, config, spec_filter, no_new_privileges(spec))
        except Unenforceable as exc:
            if config.on_missing_profile != "allow":
                raise
            log.warning("running UNCONFINED by the profile (the spec's own filter, if any, still applies): "
                        "enforce.on_missing_profile = allow", reason=str(exc))
            return Plan(back, restores_own=known)
        return Plan([set_seccomp(seccomp), *apparmor_modifiers(selection.profile, "enforce", config, log, spec)],
                    replaces_filter=True)
    plan = Plan([*back, ensure_filter_load], restores_own=known)  # learn, or complain with nothing to use yet
    if selection.mode == "complain":
        try:
            seccomp = enforceable_seccomp(selection.profile, config, spec_filter, no_new_privileges(spec), "complain")
        except Incompatible:
            raise
        except Unenforceable as exc:
            log.info("no usable profile yet; complain mode learns from scratch", reason=str(exc))
        else:
            plan = Plan([set_seccomp(seccomp), *apparmor_modifiers(selection.profile, "complain", config, log, spec)],
                        replaces_filter=True)
    start_tracer_early(config)
    return plan


def current_filter(spec: dict[str, Any]) -> dict[str, Any] | None:
    """The spec's linux.seccomp as it stands (None: no filter)."""
    linux = spec.get("linux")
    seccomp = linux.get("seccomp") if isinstance(linux, dict) else None
    return seccomp if isinstance(seccomp, dict) else None


def learn_hooks(config: Config, selection: Selection, container_id: str, spec: dict[str, Any],
                modifiers: list[Modifier], marked: bool, tell: RuntimeLog, nonce: str = ""
                ) -> tuple[Modifier, PrestartRelay | None, Callable[[bytes], str | None] | None]:
    """The learn hooks, and the prestart relay with its answer when there is one.

    What the tracer needs is taken from the spec as the other modifiers leave it. With a learning
    marker (a `create`), the run is recorded at `delete`, so there is no poststop hook, and the prestart
    is the relay if it can be set up. Otherwise the prestart is `syscage-hook prestart --prepared=...`
    (see syscage.hooks.fast_prestart), with a poststop hook unless marked."""
    from syscage.hooks.fast_prestart import prepared_argument
    from syscage.oci import has_seccomp, no_new_privileges

    shaped = apply(spec, modifiers)
    watch = {"profile": selection.profile, "mode": selection.mode, "profile_defaulted": selection.profile_defaulted,
             "exec_mode": not has_seccomp(shaped), "no_new_privileges": no_new_privileges(shaped), "nonce": nonce}
    relay = open_relay(str(config.run_dir), config.hook_timeout) if marked else None
    if relay is not None:
        return add_hook("prestart", relay.hook_entry()), relay, relay_answer(config, container_id, watch, tell)
    prepared = prepared_argument(str(config.tracer_socket), container_id, watch)
    phases = ("prestart",) if marked else HOOK_PHASES
    return add_learn_hooks(str(hook_binary(config)), config.hook_timeout, hook_env(), phases, (prepared,),
                           (f"--key={nonce}",) if nonce else ()), None, None


def relay_answer(config: Config, container_id: str, watch: dict[str, Any], tell: RuntimeLog
                 ) -> Callable[[bytes], str | None]:
    """Answers the relayed prestart: None once the tracer watches (or, with learn.on_tracer_error = run,
    after a warning that the container runs untraced), else why the container must fail. Messages go to
    stderr and to the runtime's --log: for a containerd `create`, stderr is the container's."""
    def answer(raw: bytes) -> str | None:
        from syscage.hooks.protocol import watch_key
        from syscage.hooks.watch import ask_to_watch
        from syscage.oci import parse_hook_state

        try:
            state = parse_hook_state(raw)
            if state.container_id != container_id or state.pid is None:
                raise SyscageError(f"the prestart state names container {state.container_id!r} (pid {state.pid})",
                                   "report this: the runtime's state does not match its command line")
            ask_to_watch(config, {"op": "watch", "container_id": container_id, "pid": state.pid, "via": "relay",
                                  "key": watch_key(watch["nonce"], str(state.bundle)), **watch}, "runtime",
                         warn=tell.warning)
        except SyscageError as exc:
            tell.error(f"prestart: {exc}")
            JsonLog.of(config, "runtime").log(
                "error", "prestart failed", container_id=container_id, profile=watch["profile"], error=str(exc))
            return f"syscage: container {container_id}: {exc}"
        return None
    return answer


def relay_missed(config: Config, container_id: str, runtime_root: str | None, tell: RuntimeLog
                 ) -> Callable[[], int]:
    """The runtime created the container but its relayed prestart never ran (the hook could not see its
    FIFO): the container is not watched. Applies learn.on_tracer_error; the exit code to end with."""
    def missed() -> int:
        problem = "its prestart relay never ran, so it is not traced"
        if config.on_tracer_error != "fail":
            tell.warning(f"{problem}; its run will be recorded as incomplete")
            return 0
        tell.error(f"{problem} (learn.on_tracer_error = fail: deleted)")
        from syscage.shim.child import spawn_runtime, wait_runtime

        options = [*(["--root", runtime_root] if runtime_root else []), *tell.options()]
        wait_runtime(spawn_runtime(str(config.runtime_path), [*options, "delete", "--force", container_id]))
        return 1
    return missed


def start_tracer_early(config: Config) -> None:
    from syscage.hooks.liveness import tracer_lock_held

    if tracer_lock_held(config.run_dir):
        return  # the usual case: running (or starting), and the client module is not even needed
    from syscage.hooks.client import start_tracer_in_background

    start_tracer_in_background(config)


def enforceable_seccomp(name: str, config: Config, spec_filter: dict[str, Any] | None = None,
                        nnp: bool | None = None, mode: str = "enforce") -> dict[str, Any]:
    """The filter for a container of `mode` ("enforce" or "complain") under profile `name`: the profile
    intersected with the spec's own filter `spec_filter`, so never looser than it; Unenforceable saying
    why not and what to do. nnp: the spec's noNewPrivileges (None: not checked)."""
    from syscage.compose import DENY_LOG, CannotCompose, compose, deny_errno, is_trivial
    from syscage.seccomp import render, validate
    from syscage.store import ProfileStore

    store = ProfileStore.of(config)
    profile = usable_profile(store, name, config)
    allowed = set(profile["syscalls"]) | set(config.always_allow)  # an older profile may lack the floor
    if nnp is not None:
        allowed |= privileges_base(profile, nnp, config, mode)
    allowed -= set(config.never_allow)  # a profile learned before the config named them, or a base set
    if mode == "enforce" and is_trivial(spec_filter):
        # The store compiled seccomp.json with libseccomp when it wrote it: if it is exactly this profile's
        # filter, use it and spare the start path libseccomp (~15 ms). Otherwise (errno changed in the
        # config since, a seccomp.json out of step, a floor the profile lacks) render and compile it now.
        expected = render(sorted(allowed), config.seccomp_errno, profile["arch"])
        if store.read_seccomp(name) != expected:
            try:
                validate(expected, name)
            except SyscageError as exc:
                raise Unenforceable(f"enforce: {exc.what}", exc.hint) from None
        return expected
    deny = deny_errno(config.seccomp_errno) if mode == "enforce" else DENY_LOG
    try:
        return compose(spec_filter, allowed, deny, profile["arch"])
    except CannotCompose as exc:
        raise Incompatible(f"{mode}: profile {name}: {exc.what}", exc.hint) from None


def apparmor_modifiers(name: str | None, mode: str, config: Config, log: Any, spec: dict[str, Any]) -> list[Modifier]:
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
        from syscage.store import ProfileStore

        label = aa.label_for(name, mode)
        try:
            text = aa.for_mode(render(usable_profile(ProfileStore.of(config), name, config)), name, mode)
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


def usable_profile(store: Any, name: str, config: Config) -> dict[str, Any]:
    """The profile, complete and allowing something, or Unenforceable."""
    from syscage.hooks.liveness import live_instance

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


def hook_binary(config: Config) -> Path:
    """runtime.hook_path, or else the syscage-hook installed beside this syscage-runtime."""
    if config.hook_path.exists():
        return config.hook_path
    beside = Path(sys.argv[0]).absolute().parent / "syscage-hook"
    if beside.exists():
        return beside
    raise SyscageError(f"the hook {config.hook_path} does not exist", "install syscage or set runtime.hook_path")


def hook_env() -> list[str]:
    """Runtimes start hooks with only the environment written in the spec: pass our config along."""
    return [f"SYSCAGE_CONFIG={os.environ['SYSCAGE_CONFIG']}"] if os.environ.get("SYSCAGE_CONFIG") else []


class RuntimeLog:
    """One line for the operator: on stderr, and in the runtime's --log file, where containerd looks for
    a runtime's error (a containerd `create` gives the runtime the container's own stdio)."""

    def __init__(self, container_id: str, path: str | None, log_format: str | None) -> None:
        self.container_id, self.path, self.format = container_id, path, log_format

    def options(self) -> list[str]:
        """The runtime's own --log options, for a runtime call of ours that belongs to this one."""
        return [*(["--log", self.path] if self.path else []), *(["--log-format", self.format] if self.format else [])]

    def error(self, message: str) -> None:
        self._say("error", message)

    def warning(self, message: str) -> None:
        self._say("warning", message)

    def _say(self, level: str, message: str) -> None:
        line = f"syscage: {level}: container {self.container_id}: {message}"
        sys.stderr.write(line + "\n")
        if not self.path:
            return
        try:
            with open(self.path, "a") as f:
                if self.format == "json":
                    from datetime import UTC, datetime

                    stamp = datetime.now(UTC).isoformat()
                    f.write(json.dumps({"level": level, "msg": line, "time": stamp}) + "\n")
                else:
                    f.write(line + "\n")
        except OSError:
            return


def refuse(message: str, container_id: str, runtime_log: str | None, runtime_log_format: str | None,
           marker: str | None = None) -> int:
    """One line on stderr and in the runtime's log; a learning marker already left for this container is
    taken back: the container will not exist."""
    if marker:
        from syscage.shim.markers import remove_marker

        remove_marker(marker)
    RuntimeLog(container_id, runtime_log, runtime_log_format).error(message)
    return 1
