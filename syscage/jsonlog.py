"""JSON-lines log entries for the short-lived processes (hooks, the runtime wrapper).

JsonLog has the calling shape of the structlog logger the long-lived processes get from syscage.logs
(.info/.warning/.error("event", key=value), .bind(key=value)) and writes the same records (sorted keys,
ISO UTC timestamp, level, component, event, bound fields; tests/test_jsonlog.py compares them), with the
standard library only: these processes run on every container start, where importing structlog would cost
more than the rest of their work.
"""

from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any

from syscage.console import say_warning

if TYPE_CHECKING:
    from syscage.config import Config

_ORDER = {"debug": 10, "info": 20, "warning": 30, "error": 40}


def append(log_file: str, min_level: str, component: str, level: str, event: str, **fields: Any) -> None:
    if _ORDER[level] < _ORDER.get(min_level, 20):
        return
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
    record = {**fields, "component": component, "event": event, "level": level, "timestamp": stamp}
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    try:
        os.makedirs(os.path.dirname(log_file), exist_ok=True)
        # One write() of a whole line on an O_APPEND descriptor: concurrent writers never interleave.
        fd = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    except OSError as exc:
        say_warning(f"cannot write log {log_file}: {exc}")


class JsonLog:
    """A bound logger with structlog's calling shape: JsonLog(...).info("event", key=value)."""

    def __init__(self, log_file: str, min_level: str, component: str, **bound: Any) -> None:
        self.log_file, self.min_level, self.component, self.bound = log_file, min_level, component, bound

    @classmethod
    def of(cls, config: Config | None, component: str, **bound: Any) -> JsonLog:
        """The log the config names, at its level. None: the config is loaded here; a config that cannot be
        loaded has no log to write to (entries are dropped: the caller says what went wrong on stderr)."""
        if config is None:
            from syscage.config import load_config
            from syscage.errors import SyscageError

            try:
                config = load_config()
            except SyscageError:
                return cls("", "error", component, **bound)
        return cls(str(config.log_file), config.log_level, component, **bound)

    def bind(self, **bound: Any) -> JsonLog:
        return JsonLog(self.log_file, self.min_level, self.component, **self.bound, **bound)

    def log(self, level: str, event: str, **fields: Any) -> None:
        if self.log_file:
            append(self.log_file, self.min_level, self.component, level, event, **self.bound, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log("error", event, **fields)

