"""Configuration from TOML: /etc/syscage/config.toml, or the file SYSCAGE_CONFIG names."""

from __future__ import annotations

import errno as errno_codes
import os
from pathlib import Path
from typing import Any, NamedTuple

from syscage import standard
from syscage.errors import SyscageError

DEFAULT_CONFIG_PATH = Path(standard.CONFIG_FILE)
ENV_CONFIG = standard.CONFIG_ENV
# Allowed by every profile whatever was seen: a run cut short (SIGKILL) never makes exit_group, and a
# process that cannot exit or return from a signal handler crashes instead of failing one syscall.
DEFAULT_ALWAYS_ALLOW = ("exit", "exit_group", "restart_syscall", "rt_sigreturn")
# The kernel's own asynchronous syscalls: a sleep interrupted by a stop signal resumes through
# restart_syscall, which the kernel makes for the process (no program calls it, so learning almost never sees
# it). Allowed by every profile whatever the config says, as a runtime's asynchronous base set is; Docker's
# default allows it too.
KERNEL_ASYNCHRONOUS = ("restart_syscall",)


# A NamedTuple, not a dataclass: immutable all the same, and it spares every hook and wrapper call
# the import of dataclasses (and inspect; see the README's Performance section).
class Config(NamedTuple):
    store: Path = Path(standard.STORE)
    run_dir: Path = Path(standard.RUN_DIR)
    log_file: Path = Path(standard.LOG_FILE)
    log_level: str = "info"
    idle_timeout: float = 300.0
    start_timeout: float = 30.0
    max_containers: int = 256
    max_containers_per_namespace: int = 0  # 0: the default share, see namespace_share
    max_threads: int = 16384
    orphan_grace: float = 3600.0
    on_tracer_error: str = "run"
    seccomp_errno: int = errno_codes.EPERM
    always_allow: tuple[str, ...] = DEFAULT_ALWAYS_ALLOW
    never_allow: tuple[str, ...] = ()  # seccomp.never_allow: withheld from every profile, even if a run needs one
    runtime_path: Path = Path(standard.RUNTIME_PATH)
    hook_path: Path = Path(standard.HOOK_PATH)
    hook_timeout: int = 60
    on_missing_profile: str = "fail"
    apparmor_mode: str = "auto"
    coverage: str = "learned"  # seccomp.coverage: what enforce allows beyond the learned syscalls
    max_argument_values: int = 16  # seccomp.max_argument_values: more in one run: unconditional (syscage.arguments)
    convergence_min_runs: int = 5
    convergence_min_minutes: float = 0.0
    chance_share: float = 0.5
    convergence_on_enforce: str = "warn"
    node_name: str = ""  # node.name: names this node in the runs it records; empty: the host name
    checkpoint_interval: float = 300.0  # tracer.checkpoint_interval: seconds between checkpoints of learners
    source: Path | None = None

    @property
    def profiles_dir(self) -> Path:
        return self.store / "profiles"

    @property
    def namespace_share(self) -> int:
        """Watch slots one Kubernetes namespace may take: tracer.max_containers_per_namespace, by default a
        quarter of tracer.max_containers (at least 1)."""
        return self.max_containers_per_namespace or max(1, self.max_containers // 4)

    @property
    def node(self) -> str:
        """This node's name in run records (node.name, else the host name)."""
        return self.node_name or os.uname().nodename

    @property
    def tracer_socket(self) -> Path:
        return self.run_dir / "tracer.sock"


# (table, key) in the TOML file -> (Config field, converter)
_KEYS: dict[tuple[str, str], tuple[str, Any]] = {
    ("paths", "store"): ("store", Path),
    ("paths", "run_dir"): ("run_dir", Path),
    ("paths", "log_file"): ("log_file", Path),
    ("log", "level"): ("log_level", str),
    ("tracer", "idle_timeout"): ("idle_timeout", float),
    ("tracer", "start_timeout"): ("start_timeout", float),
    ("tracer", "max_containers"): ("max_containers", int),
    ("tracer", "max_containers_per_namespace"): ("max_containers_per_namespace", int),
    ("tracer", "max_threads"): ("max_threads", int),
    ("tracer", "orphan_grace"): ("orphan_grace", float),
    ("learn", "on_tracer_error"): ("on_tracer_error", str),
    ("seccomp", "errno"): ("seccomp_errno", None),
    ("seccomp", "always_allow"): ("always_allow", tuple),
    ("seccomp", "never_allow"): ("never_allow", tuple),
    ("runtime", "path"): ("runtime_path", Path),
    ("runtime", "hook_path"): ("hook_path", Path),
    ("runtime", "hook_timeout"): ("hook_timeout", int),
    ("enforce", "on_missing_profile"): ("on_missing_profile", str),
    ("apparmor", "mode"): ("apparmor_mode", str),
    ("seccomp", "coverage"): ("coverage", str),
    ("seccomp", "max_argument_values"): ("max_argument_values", int),
    ("convergence", "min_runs"): ("convergence_min_runs", int),
    ("convergence", "min_minutes"): ("convergence_min_minutes", "minutes"),
    ("convergence", "chance_share"): ("chance_share", "share"),
    ("convergence", "on_enforce"): ("convergence_on_enforce", str),
    ("node", "name"): ("node_name", str),
    ("tracer", "checkpoint_interval"): ("checkpoint_interval", float),
}

_CHOICES = {
    "log_level": ("debug", "info", "warning", "error"),
    "on_tracer_error": ("run", "fail"),
    "on_missing_profile": ("fail", "allow"),
    "apparmor_mode": ("auto", "required", "off"),
    "coverage": ("learned", "learned+related", "learned+static"),
    "convergence_on_enforce": ("warn", "refuse"),
}


def parse_errno(value: object) -> int:
    """'EPERM', 'eperm' or 1 -> 1. Refuses anything that is not a known errno."""
    if isinstance(value, bool):
        raise ValueError(f"not an errno: {value!r}")
    if isinstance(value, int):
        if value in errno_codes.errorcode:
            return value
        raise ValueError(f"unknown errno number {value}")
    if isinstance(value, str) and hasattr(errno_codes, value.upper()):
        return int(getattr(errno_codes, value.upper()))
    raise ValueError(f"unknown errno {value!r} (use a name like EPERM or a number)")


def config_path() -> Path:
    return Path(os.environ.get(ENV_CONFIG) or DEFAULT_CONFIG_PATH)


def load_config(path: Path | None = None) -> Config:
    """Load the config; a missing default file means built-in defaults, a missing named file is an error."""
    explicit = path is not None or bool(os.environ.get(ENV_CONFIG))
    path = path or config_path()
    try:
        raw = _parsed(path)
    except FileNotFoundError:
        if explicit:
            raise SyscageError(f"config file {path} does not exist", f"create it or unset {ENV_CONFIG}") from None
        return Config()
    except (OSError, UnicodeDecodeError) as exc:
        raise SyscageError(f"cannot read config {path}: {exc}", "check the file's permissions") from None
    except ValueError as exc:  # tomli.TOMLDecodeError
        raise SyscageError(f"config {path} is not valid TOML: {exc}", "fix the syntax") from None
    return config_from_mapping(raw, path)


def _parsed(path: Path) -> dict[str, Any]:
    """The TOML document, from the parse cache (syscage.configcache) when it was made from this very text.
    The checks of config_from_mapping run either way; only the parsing is cached."""
    import json

    from syscage import configcache

    text = path.read_bytes()
    cache = configcache.cache_path(str(path), "json")
    cached = configcache.read_cache(cache, text)
    if cached is not None:
        try:
            doc = json.loads(cached)
            if isinstance(doc, dict):
                return doc
        except ValueError:
            pass  # damaged: parse again, and replace it
    import tomli

    doc = tomli.loads(text.decode())
    try:
        body = json.dumps(doc)
    except (TypeError, ValueError):
        return doc  # e.g. a TOML date, which JSON cannot hold: such a config is refused below anyway
    configcache.write_cache(cache, text, body)
    return doc


def config_from_mapping(raw: dict[str, Any], source: Path | None = None) -> Config:
    values: dict[str, Any] = {"source": source}
    where = f"config {source}" if source else "config"
    for table, entries in raw.items():
        if not isinstance(entries, dict):
            raise SyscageError(f"{where}: [{table}] must be a table", "see config/config.toml for the layout")
        for key, value in entries.items():
            if (table, key) not in _KEYS:
                raise SyscageError(f"{where}: unknown key {table}.{key}", "see config/config.toml for valid keys")
            field, convert = _KEYS[(table, key)]
            try:
                values[field] = parse_errno(value) if field == "seccomp_errno" else _convert(convert, value)
            except (TypeError, ValueError) as exc:
                raise SyscageError(f"{where}: {table}.{key}: {exc}", "fix the value") from None
    if values.get("max_argument_values", 1) < 1:
        raise SyscageError(f"{where}: seccomp.max_argument_values = {values['max_argument_values']}",
                           "use at least 1 (a syscall with more distinct values in a run is allowed with any)")
    if values.get("max_containers", 0) > 65535:
        raise SyscageError(f"{where}: tracer.max_containers = {values['max_containers']}", "use at most 65535")
    for field, allowed in _CHOICES.items():
        if field in values and values[field] not in allowed:
            raise SyscageError(f"{where}: {field} = {values[field]!r}", f"use one of {', '.join(allowed)}")
    both = set(values.get("never_allow", ())) & set(values.get("always_allow", DEFAULT_ALWAYS_ALLOW))
    if both:
        raise SyscageError(f"{where}: seccomp.never_allow and seccomp.always_allow both name {', '.join(sorted(both))}",
                           "remove them from one of the two lists")
    kernel = set(values.get("never_allow", ())) & set(KERNEL_ASYNCHRONOUS)
    if kernel:
        raise SyscageError(f"{where}: seccomp.never_allow names {', '.join(sorted(kernel))}, which the kernel itself "
                           "makes for a process (every profile allows it)", "remove it from seccomp.never_allow")
    known = set(Config._fields)
    return Config(**{k: v for k, v in values.items() if k in known})


def _convert(convert: Any, value: Any) -> Any:
    if convert is Path:
        if not isinstance(value, str) or not value.startswith("/"):
            raise ValueError(f"must be an absolute path, got {value!r}")
        return Path(value)
    if convert is tuple:  # a list of syscall names
        if not isinstance(value, list) or not all(isinstance(v, str) and v.isidentifier() and v.islower()
                                                  for v in value):
            raise ValueError(f"must be a list of syscall names, got {value!r}")
        return tuple(sorted(set(value)))
    if convert == "minutes":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"must be a number of minutes (0 or more), got {value!r}")
        return float(value)
    if convert == "share":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ValueError(f"must be a share of runs above 0 and at most 1, got {value!r}")
        return float(value)
    if convert in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise ValueError(f"must be a positive number, got {value!r}")
        return convert(value)
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    return value
