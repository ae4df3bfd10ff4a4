"""Structured logging: JSON lines to the configured log file, one short human line on stderr for errors."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from syscage.config import Config
from syscage.console import say_warning

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def setup_logging(config: Config, component: str) -> structlog.stdlib.BoundLogger:
    """Configure structlog to append JSON lines to config.log_file; fall back to stderr if unwritable."""
    stream: Any
    try:
        config.log_file.parent.mkdir(parents=True, exist_ok=True)
        stream = open(config.log_file, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    except OSError as exc:
        say_warning(f"cannot open log file {config.log_file}: {exc}; logging to stderr")
        stream = sys.stderr
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[config.log_level]),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    return structlog.get_logger().bind(component=component)
