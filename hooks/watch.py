"""Handing a starting container to the tracer, with learn.on_tracer_error applied: used by the prestart
hook and by syscage-runtime's prestart relay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from syscage.config import Config
from syscage.console import say_warning
from syscage.errors import SyscageError
from syscage.jsonlog import JsonLog


def ask_to_watch(config: Config, message: dict[str, Any], component: str,
                 warn: Callable[[str], None] | None = None) -> None:
    """Returns once the tracer watches the container, or (policy "run") after a warning that it runs
    untraced (say_warning, or `warn`); raises SyscageError when the tracer fails and the policy is "fail"."""
    from syscage.hooks.client import request_starting_tracer

    container_id = message["container_id"]
    try:
        reply = request_starting_tracer(config, message)
        if not reply.get("ok"):
            raise SyscageError(str(reply.get("error")), "see the tracer's log")
    except SyscageError as exc:
        if config.on_tracer_error == "fail":
            raise
        JsonLog.of(config, component).log(
            "warning", "container runs untraced", error=str(exc), phase="prestart", container_id=container_id,
            profile=message.get("profile"), mode=message.get("mode"))
        if warn is not None:
            warn(f"runs untraced: {exc}; its run will be recorded as incomplete")
        else:
            say_warning(f"container {container_id} runs untraced: {exc}; its run will be recorded as incomplete")
    # success is logged by the tracer ("watching")
