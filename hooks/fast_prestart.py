"""The prestart hook's fast path, for containers syscage-runtime prepared.

The wrapper has already read the config and validated the annotations, so it writes what the tracer
needs into the hook's arguments (`--prepared=<json>`): this path only adds the pid from the runtime's
state and asks the tracer to watch. It imports json and socket, nothing of the config loader, which
halves the hook's start-up. Anything unexpected (no tracer answering yet, a refusal, odd input) falls
back to the full prestart, which starts the tracer, applies learn.on_tracer_error and logs.
"""

from __future__ import annotations

import json

from syscage.protocol import TracerUnavailable, Watch, call, watch_key

PREPARED = "--prepared="
REQUEST_TIMEOUT = 10.0
# The Watch fields the wrapper decides (the hook adds the pid, the key and `via`).
FIELDS = ("profile", "mode", "profile_defaulted", "exec_mode", "no_new_privileges")


def prepared_argument(tracer_socket: str, watch: Watch, nonce: str) -> str:
    """The hook argument syscage-runtime writes into the spec for `watch` (its pid still unknown)."""
    doc = {"socket": tracer_socket, "container_id": watch.container_id, "nonce": nonce,
           **{k: getattr(watch, k) for k in FIELDS}}
    return PREPARED + json.dumps(doc, separators=(",", ":"))


def key_arguments(argument: str) -> list[str]:
    """The full hook's arguments that carry the prepared nonce on, when the fast path hands over."""
    try:
        nonce = json.loads(argument[len(PREPARED):]).get("nonce")
    except (ValueError, AttributeError):
        return []
    return [f"--key={nonce}"] if isinstance(nonce, str) and nonce else []


def watch_prepared(argument: str, raw_state: bytes) -> bool:
    """True once the tracer watches the container; False hands over to the full prestart."""
    try:
        prepared = json.loads(argument[len(PREPARED):])
        state = json.loads(raw_state)
        pid, container_id, path = state["pid"], state["id"], prepared["socket"]
        key = watch_key(prepared.get("nonce"), state.get("bundle"))
        message = Watch(container_id, pid, key=key, via="prepared hook", bundle=str(state.get("bundle") or ""),
                        **{k: prepared[k] for k in FIELDS}).message()
    except (ValueError, KeyError, TypeError, RecursionError):
        return False
    notes = state.get("annotations")
    notes = notes if isinstance(notes, dict) else {}
    profile = None if prepared["profile_defaulted"] else prepared["profile"]
    if not (isinstance(pid, int) and pid > 0 and container_id == prepared.get("container_id")
            and isinstance(path, str) and notes.get("io.syscage.mode") == prepared["mode"]
            and notes.get("io.syscage.profile") == profile):
        return False  # e.g. a hook left in a reused bundle whose annotations changed: the full hook decides
    try:
        reply = call(path, message, REQUEST_TIMEOUT)
    except TracerUnavailable:  # or lost: watch is idempotent, the full prestart may safely ask again
        return False
    return reply.get("ok") is True
