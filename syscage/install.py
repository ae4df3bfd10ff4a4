"""`syscage install`: wire syscage into containerd (a CRI runtime handler) or into podman/CRI-O (hooks.d).

containerd config versions differ in how an imported file combines with the main config:

- version 3 (containerd 2.x) merges imported plugin tables key by key, so `--write` puts the runtime in
  a drop-in, `<config dir>/conf.d/syscage.toml`, and adds that file's absolute path to `imports`.
- version 2 (containerd 1.x) lets an imported file REPLACE whole plugin sections: a drop-in defining
  `plugins."io.containerd.grpc.v1.cri"` would wipe every other CRI setting of the main file (sandbox
  image, runc options, registry mirrors; containerd issues #5837 and #7982). So for version 2 the
  runtime table is edited into the main config in place, preserving its comments, order and other keys.
- version 1 (or no `version` key) is refused: `containerd config migrate` converts it first.

Every write is atomic (temp file + fsync + rename), the main config keeps its mode, the first change
to it leaves `<config>.syscage.bak`, and running the same command twice changes nothing.
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import re
import stat
import textwrap
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import tomli
import tomlkit

from syscage.atomic import write_atomically
from syscage.config import Config
from syscage.errors import SyscageError

DEFAULT_CONTAINERD_CONFIG = Path("/etc/containerd/config.toml")
DEFAULT_RUNTIME_NAME = "syscage"
DEFAULT_RUNTIME_BINARY = "/usr/local/bin/syscage-runtime"
SHIPPED_HOOK_PATH = Path("/usr/local/bin/syscage-hook")
SHIM_RUNTIME_TYPE = "io.containerd.syscage.v2"
SHIM_BINARY = "containerd-shim-syscage-v2"
RUNC_RUNTIME_TYPE = "io.containerd.runc.v2"
VIAS = ("shim", "binary-name")
ANNOTATION_ALLOW = ["io.syscage.*"]
DROPIN_NAME = "syscage.toml"
BACKUP_SUFFIX = ".syscage.bak"
HOOKS_FILE_NAME = "syscage.json"
CRI_PLUGIN = {2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.runtime"}
# RuntimeClass.handler must be a lowercase RFC 1123 label, and the name also becomes a TOML key.
_RUNTIME_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_BARE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
_VERSION_LINE_RE = re.compile(r"^version\s*=")


# --- what the runtime entry looks like ---------------------------------------------------------------


def runtime_table_path(version: int, name: str) -> tuple[str, ...]:
    """Where the runtime entry lives for a config version."""
    if version not in CRI_PLUGIN:
        raise SyscageError(f"containerd config version {version} is not supported", "use version 2 or 3")
    return ("plugins", CRI_PLUGIN[version], "containerd", "runtimes", name)


def runtime_entry(via: str = "shim", runtime_binary: str = DEFAULT_RUNTIME_BINARY,
                  systemd_cgroup: bool = False) -> dict[str, Any]:
    """The runtime table's keys. `systemd_cgroup` only matters for binary-name, where `options` are runc's."""
    if via not in VIAS:
        raise SyscageError(f"unknown --via {via!r}", f"use one of {', '.join(VIAS)}")
    entry: dict[str, Any] = {"runtime_type": SHIM_RUNTIME_TYPE if via == "shim" else RUNC_RUNTIME_TYPE}
    # CRI copies only allow-listed annotations into the OCI spec; without these syscage never sees its mode.
    entry["pod_annotations"] = list(ANNOTATION_ALLOW)
    entry["container_annotations"] = list(ANNOTATION_ALLOW)
    if via == "binary-name":
        options: dict[str, Any] = {"BinaryName": runtime_binary}
        if systemd_cgroup:
            options["SystemdCgroup"] = True
        entry["options"] = options
    return entry


def _key(part: str) -> str:
    return part if _BARE_KEY_RE.match(part) else json.dumps(part)


def _render_tables(path: tuple[str, ...], entry: dict[str, Any], indent: int = 0, step: int = 0) -> list[str]:
    """TOML lines for `entry` at `path` with full dotted headers, indented like the file they go into."""
    lines = [" " * indent + "[" + ".".join(_key(p) for p in path) + "]"]
    subtables = []
    for key, value in entry.items():
        if isinstance(value, dict):
            subtables.append((key, value))
        else:
            lines.append(" " * (indent + step) + f"{_key(key)} = {tomlkit.item(value).as_string()}")
    for key, value in subtables:
        lines.append("")
        lines.extend(_render_tables((*path, key), value, indent + step, step))
    return lines


def containerd_snippet(version: int, name: str = DEFAULT_RUNTIME_NAME, via: str = "shim",
                       runtime_binary: str = DEFAULT_RUNTIME_BINARY, systemd_cgroup: bool = False) -> str:
    """The TOML for one runtime: for version 3 a complete drop-in file, for version 2 tables to add to the
    main config (valid TOML on its own; prefix `version = 2` to make it a whole config)."""
    entry = runtime_entry(via, runtime_binary, systemd_cgroup)
    path = runtime_table_path(version, name)
    how = (f"runtime_type {SHIM_RUNTIME_TYPE} runs the shim {SHIM_BINARY} (must be on containerd's PATH)"
           if via == "shim" else f"containerd's runc shim runs {runtime_binary} in place of runc (BinaryName)")
    if version == 3:
        head = [
            "# syscage runtime for containerd 2.x (config version 3): a drop-in, saved as conf.d/syscage.toml",
            "# next to the main config and listed by absolute path in the main config's `imports`.",
            "# containerd 2.x merges imported plugin tables key by key: this adds a runtime and changes nothing else.",
            f"# {how}.",
            "# pod_annotations/container_annotations: CRI passes only allow-listed annotations into the OCI spec.",
            "# `syscage install containerd --write` writes this file and the import for you.",
            "version = 3",
            "",
        ]
    else:
        head = [
            "# syscage runtime for containerd 1.x (config version 2). Add these tables to the main config itself:",
            "# with version 2 an imported file replaces whole plugin sections, so a drop-in defining CRI runtimes",
            "# would drop every other CRI setting of the main config (containerd issues #5837, #7982).",
            f"# {how}.",
            "# pod_annotations/container_annotations: CRI passes only allow-listed annotations into the OCI spec.",
            "# `syscage install containerd --write` makes this edit for you (keeping a backup).",
        ]
    return "\n".join(head + _render_tables(path, entry)) + "\n"


def runtime_class_yaml(name: str) -> str:
    return (
        "apiVersion: node.k8s.io/v1\n"
        "kind: RuntimeClass\n"
        "metadata:\n"
        f"  name: {name}\n"
        f"handler: {name}\n"
        "# A pod opts in with this runtime class and the syscage annotations:\n"
        "#   metadata:\n"
        "#     annotations:\n"
        "#       io.syscage.mode: learn        # or enforce, complain\n"
        "#       io.syscage.profile: my-app\n"
        "#   spec:\n"
        f"#     runtimeClassName: {name}\n"
    )


# --- reading the operator's config --------------------------------------------------------------------


@dataclass
class ContainerdConfig:
    path: Path
    exists: bool
    version: int
    raw: bytes = b""
    data: dict[str, Any] = field(default_factory=dict)
    mode: int = 0o644


def read_containerd_config(path: Path) -> ContainerdConfig:
    """Read and check the config; a missing file reads as an empty version 2 config (for printing only)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return ContainerdConfig(path, exists=False, version=2)
    except OSError as exc:
        raise SyscageError(f"cannot read containerd config {path}: {exc}", "check the path and permissions") from None
    try:
        data = tomli.loads(raw.decode())
    except (UnicodeDecodeError, tomli.TOMLDecodeError) as exc:
        raise SyscageError(f"containerd config {path} is not valid TOML: {exc}",
                           "fix it (containerd would not start with it either)") from None
    version = data.get("version")
    if version is None or version == 1:
        what = "has no `version` key, so containerd reads it as version 1" if version is None else "is version 1"
        raise SyscageError(f"containerd config {path} {what}",
                           f"migrate it first: containerd config migrate > {path}.new, review, then move it in place")
    if isinstance(version, bool) or version not in CRI_PLUGIN:
        raise SyscageError(f"containerd config {path} has unknown version {version!r}",
                           "syscage supports versions 2 (containerd 1.x) and 3 (containerd 2.x)")
    return ContainerdConfig(path, exists=True, version=version, raw=raw, data=data,
                            mode=stat.S_IMODE(path.stat().st_mode))


def _get(data: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def default_runtime_uses_systemd_cgroup(data: dict[str, Any], version: int) -> bool:
    """Whether the default runtime runs with SystemdCgroup = true; a BinaryName runtime must match it, or
    runc would read kubelet's systemd cgroup parent (slice:prefix:name) as a cgroupfs path and fail."""
    containerd = _get(data, ("plugins", CRI_PLUGIN[version], "containerd")) or {}
    default = containerd.get("default_runtime_name") or "runc"
    return _get(containerd, ("runtimes", default, "options", "SystemdCgroup")) is True


def shim_cgroup_note(data: dict[str, Any], version: int, via: str) -> str | None:
    """A warning for --via shim on a systemd-cgroup node: CRI decodes `options` as runc options only for
    io.containerd.runc.v2, so the shim handler cannot be given SystemdCgroup = true."""
    if via != "shim" or not default_runtime_uses_systemd_cgroup(data, version):
        return None
    return ("the default runtime uses SystemdCgroup = true, but CRI passes runc options only to runtime_type "
            f"{RUNC_RUNTIME_TYPE}; if containers of this handler fail with cgroup errors, use --via binary-name "
            "(which copies SystemdCgroup)")


def _check_name(name: str) -> None:
    if not _RUNTIME_NAME_RE.match(name):
        raise SyscageError(f"runtime name {name!r} is not a valid RuntimeClass handler",
                           "use lowercase letters, digits and '-' (at most 63), e.g. syscage")


def _check_binary(runtime_binary: str) -> None:
    if not runtime_binary.startswith("/"):
        raise SyscageError(f"--runtime-binary {runtime_binary!r} is not an absolute path",
                           "containerd's runc shim needs an absolute BinaryName, e.g. /usr/local/bin/syscage-runtime")


# --- printing the plan (no --write) -------------------------------------------------------------------


def describe_containerd(config_path: Path = DEFAULT_CONTAINERD_CONFIG, name: str = DEFAULT_RUNTIME_NAME,
                        via: str = "shim", runtime_binary: str = DEFAULT_RUNTIME_BINARY) -> str:
    """What `syscage install containerd` prints without --write: snippet, explanation, RuntimeClass."""
    _check_name(name)
    _check_binary(runtime_binary)
    cfg = read_containerd_config(config_path)
    systemd = via == "binary-name" and default_runtime_uses_systemd_cgroup(cfg.data, cfg.version)
    snippet = containerd_snippet(cfg.version, name, via, runtime_binary, systemd)
    found = (f"{config_path} is config version {cfg.version}" if cfg.exists
             else f"{config_path} does not exist; assuming config version 2 (containerd 1.x), use --config otherwise")
    if cfg.version == 3:
        where = (f"Save the TOML below as {_dropin_path(config_path)} and add that absolute path to `imports` "
                 f"in {config_path} (containerd 2.x merges imported plugin tables key by key).")
    else:
        where = (f"Add the TOML below to {config_path} itself, not to an imported drop-in: containerd 1.x lets "
                 "an imported file replace whole plugin sections, which would drop the main file's other CRI "
                 "settings (containerd issues #5837, #7982).")
    if via == "shim":
        how = (f"Pods whose RuntimeClass handler is {name!r} get runtime_type {SHIM_RUNTIME_TYPE}, which containerd "
               f"resolves to the binary {SHIM_BINARY} on its PATH (install it next to containerd-shim-runc-v2), a "
               "wrapper around containerd-shim-runc-v2.")
    else:
        how = (f"Pods whose RuntimeClass handler is {name!r} run with containerd's runc shim ({RUNC_RUNTIME_TYPE}) "
               f"and options.BinaryName = {runtime_binary}, the runc-compatible syscage-runtime, which rewrites "
               "the spec of opted-in containers and executes the real runtime (runtime.path in syscage's config). "
               "These options replace the default runtime's runc options entirely"
               + ("; SystemdCgroup = true is copied from the default runtime." if systemd else "."))
    paragraph = (f"{how} Containers without an io.syscage.mode annotation run exactly as under runc. "
                 "pod_annotations and container_annotations allow-list io.syscage.*: CRI copies only allow-listed "
                 f"annotations into the OCI spec. {where} Run again with --write to make this change, "
                 "then restart containerd.")
    note = shim_cgroup_note(cfg.data, cfg.version, via)
    if note:
        paragraph += f" Note: {note}."
    return (f"# {found}\n{_wrap(paragraph)}\n\n{snippet}\n"
            f"# Kubernetes RuntimeClass for this handler (kubectl apply -f -):\n{runtime_class_yaml(name)}")


def _wrap(text: str, width: int = 100) -> str:
    return textwrap.fill(text, width=width, break_long_words=False, break_on_hyphens=False)


def _dropin_path(config_path: Path) -> Path:
    return config_path.absolute().parent / "conf.d" / DROPIN_NAME


# --- editing (--write) --------------------------------------------------------------------------------


@dataclass
class InstallReport:
    written: list[Path] = field(default_factory=list)
    backup: Path | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.written)


def install_containerd(config_path: Path = DEFAULT_CONTAINERD_CONFIG, name: str = DEFAULT_RUNTIME_NAME,
                       via: str = "shim", runtime_binary: str = DEFAULT_RUNTIME_BINARY) -> InstallReport:
    """Add the runtime to containerd's config (drop-in for version 3, in place for version 2). Idempotent."""
    _check_name(name)
    _check_binary(runtime_binary)
    cfg = read_containerd_config(config_path)
    if not cfg.exists:
        raise SyscageError(f"containerd config {config_path} does not exist",
                           "point --config at containerd's config file (containerd --help shows its default)")
    systemd = via == "binary-name" and default_runtime_uses_systemd_cgroup(cfg.data, cfg.version)
    report = InstallReport()
    if systemd:
        report.notes.append("SystemdCgroup = true copied from the default runtime's runc options")
    note = shim_cgroup_note(cfg.data, cfg.version, via)
    if note:
        report.notes.append(note)
    text = cfg.raw.decode()
    if cfg.version == 3:
        dropin = _dropin_path(config_path)
        content = containerd_snippet(3, name, via, runtime_binary, systemd).encode()
        if _read_or_none(dropin) != content:
            dropin.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            write_atomically(dropin, content, 0o644)
            report.written.append(dropin)
        new_text = add_import(text, dropin, config_path)
        if _get(cfg.data, runtime_table_path(3, name)) is not None:
            report.notes.append(f"{config_path} also defines runtime {name!r}; the drop-in's keys are merged over it")
    else:
        _refuse_if_imports_replace_cri(cfg)
        new_text = add_runtime_v2(text, name, runtime_entry(via, runtime_binary, systemd))
        report.notes.append(f"edited {config_path} in place, not through a conf.d drop-in: with config version 2 "
                            "(containerd 1.x) an imported file replaces whole plugin sections and would drop the "
                            "main config's other CRI settings (containerd issues #5837, #7982)")
    if new_text is not None:
        backup = config_path.with_name(config_path.name + BACKUP_SUFFIX)
        # The first backup is the pristine config; later runs must not overwrite it with an edited one.
        if not backup.exists():
            write_atomically(backup, cfg.raw, cfg.mode)
            report.backup = backup
        # Through a symlinked config to its target, so that the link stays a link.
        write_atomically(config_path.resolve(), new_text.encode(), cfg.mode)
        report.written.append(config_path)
    return report


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _expand_import(entry: str, config_path: Path) -> tuple[str, list[Path]]:
    """An `imports` entry as containerd resolves it: cleaned, relative to the config's directory, and
    globbed only if it contains '*'. Returns the full pattern and the files it names."""
    full = os.path.normpath(entry if entry.startswith("/") else str(config_path.absolute().parent / entry))
    if "*" in full:
        return full, [Path(p) for p in sorted(glob.glob(full))]
    return full, [Path(full)] if Path(full).is_file() else []


def add_import(text: str, dropin: Path, config_path: Path) -> str | None:
    """The main config's text with `dropin` in `imports`, or None if an entry already covers it."""
    doc = tomlkit.parse(text)
    imports = doc.get("imports")
    if imports is not None and not isinstance(imports, list):
        raise SyscageError(f"{config_path}: `imports` is not an array", "make it a list of file paths")
    for entry in imports or []:
        full, _ = _expand_import(str(entry), config_path)
        # containerd globs each entry, so a conf.d/*.toml entry already imports the drop-in.
        if full == str(dropin) or ("*" in full and PurePosixPath(str(dropin)).match(full)):
            return None
    expected = tomli.loads(text)
    expected["imports"] = [*expected.get("imports", []), str(dropin)]
    if imports is not None:
        imports.append(str(dropin))
        return _verified(tomlkit.dumps(doc), expected, config_path)
    # tomlkit puts a new top-level key after the last comment before the first table, detaching that
    # comment from its table; a line right below `version = 3` is where an operator would put it.
    lines = text.splitlines(keepends=True)
    nl = "\r\n" if text.endswith("\r\n") else "\n"
    for i, line in enumerate(lines):
        if line.lstrip().startswith("["):
            break
        if _VERSION_LINE_RE.match(line):
            line_with_nl = line if line.endswith(("\n", "\r")) else line + nl
            new_line = f"imports = [{json.dumps(str(dropin))}]{nl}"
            candidate = "".join([*lines[:i], line_with_nl, new_line, *lines[i + 1:]])
            if _parses_to(candidate, expected):
                return candidate
            break
    doc["imports"] = [str(dropin)]
    return _verified(tomlkit.dumps(doc), expected, config_path)


def _merged_entry(existing: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """An existing runtime entry with syscage's keys set; keys the operator added are kept."""
    merged = copy.deepcopy(existing)
    for key, value in desired.items():
        if key == "options" and isinstance(merged.get("options"), dict):
            merged["options"].update(value)
        else:
            merged[key] = copy.deepcopy(value)
    if "options" not in desired and isinstance(merged.get("options"), dict):
        # Left over from --via binary-name: the shim runs runc itself.
        merged["options"].pop("BinaryName", None)
        if not merged["options"]:
            del merged["options"]
    return merged


def add_runtime_v2(text: str, name: str, entry: dict[str, Any]) -> str | None:
    """The version 2 config's text with the runtime table added or updated in place, or None if it is
    already there. New tables are inserted as text after the other runtimes so that not one byte of the
    operator's file moves; the result is checked to parse to exactly the original plus the runtime."""
    path = runtime_table_path(2, name)
    original = tomli.loads(text)
    existing = _get(original, path)
    if existing is not None and not isinstance(existing, dict):
        raise SyscageError(f"{'.'.join(path)} is not a table", "fix the containerd config by hand")
    merged = _merged_entry(existing or {}, entry)
    if existing == merged:
        return None
    expected = copy.deepcopy(original)
    node = expected
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SyscageError(f"{part} in the containerd config is not a table", "fix the containerd config by hand")
    node[path[-1]] = merged
    if existing is None:
        candidate = _insert_tables(text, path, merged)
        if candidate is not None and _parses_to(candidate, expected):
            return candidate
    # An existing entry (or a layout the text insertion cannot handle): let tomlkit edit the values.
    doc = tomlkit.parse(text)
    table: Any = doc
    try:
        for part in path:
            if part not in table:
                table[part] = _new_table(table, is_super=part != path[-1])
            table = table[part]
        _update_table(table, merged)
        result = tomlkit.dumps(doc)
    except (ValueError, TypeError, KeyError) as exc:
        raise SyscageError(f"cannot edit the containerd config: {exc}",
                           "add the snippet from `syscage install containerd` (without --write) by hand") from None
    return _verified(result, expected, Path("the containerd config"))


def _new_table(parent: Any, is_super: bool = False) -> Any:
    # An inline table can only hold inline tables.
    if isinstance(parent, tomlkit.items.InlineTable):
        return tomlkit.inline_table()
    return tomlkit.table(is_super_table=is_super)


def _update_table(table: Any, wanted: dict[str, Any]) -> None:
    """Make a tomlkit table hold `wanted`, touching only keys whose values differ."""
    for key in [k for k in table if k not in wanted]:
        del table[key]
    for key, value in wanted.items():
        if isinstance(value, dict):
            if key not in table or not isinstance(table[key], dict):
                table[key] = _new_table(table)
            _update_table(table[key], value)
        elif key not in table or _plain(table[key]) != value:
            table[key] = value


def _plain(value: Any) -> Any:
    # tomlkit hands back some values (bools) as plain Python objects, others as items
    return value.unwrap() if hasattr(value, "unwrap") else value


def _header_path(line: str) -> tuple[str, ...] | None:
    """The key path of a `[table]` or `[[array]]` header line, None for any other line."""
    stripped = line.strip()
    if not stripped.startswith("["):
        return None
    try:
        node: Any = tomli.loads(stripped)
    except tomli.TOMLDecodeError:
        return None
    parts: list[str] = []
    while isinstance(node, dict) and len(node) == 1:
        key, node = next(iter(node.items()))
        parts.append(key)
    return tuple(parts) if node in ({}, [{}]) and parts else None


def _insert_tables(text: str, path: tuple[str, ...], entry: dict[str, Any]) -> str | None:
    """Insert the runtime's tables after the last table under the deepest existing parent (normally
    after the last runtime), indented like that table. None if the file gives no place to put it."""
    lines = text.splitlines(keepends=True)
    headers = [(i, p, len(ln) - len(ln.lstrip())) for i, ln in enumerate(lines) if (p := _header_path(ln))]
    anchor = None
    for depth in range(len(path) - 1, 1, -1):
        under = [h for h in headers if h[1][:depth] == path[:depth]]
        if under:
            anchor = under[-1]
            break
    nl = "\r\n" if "\r\n" in text else "\n"
    if anchor is None:
        at, indent, step = len(lines), 0, 0
    else:
        index, anchor_path, anchor_indent = anchor
        # Indentation per nesting level, as `containerd config default` writes it (0 for a flat file).
        step = anchor_indent // (len(anchor_path) - 1)
        indent = step * (len(path) - 1)
        following = [h[0] for h in headers if h[0] > index]
        at = following[0] if following else len(lines)
        if following:
            while at - 1 > index and lines[at - 1].lstrip().startswith("#"):
                at -= 1  # comments right above the next header belong to it
        while at - 1 > index and not lines[at - 1].strip():
            at -= 1
    block = [" " * indent + "# added by `syscage install containerd`", *_render_tables(path, entry, indent, step)]
    before = lines[:at]
    if before and not before[-1].endswith(("\n", "\r")):
        before[-1] += nl
    after = lines[at:]
    tail = [""] if after and after[0].strip() else []
    return "".join(before) + nl.join(["", *block, *tail]) + nl + "".join(after)


def _parses_to(text: str, expected: dict[str, Any]) -> bool:
    try:
        return tomli.loads(text) == expected
    except tomli.TOMLDecodeError:
        return False


def _verified(text: str, expected: dict[str, Any], where: Path) -> str:
    if not _parses_to(text, expected):
        raise SyscageError(f"cannot edit {where} without changing other settings",
                           "add the snippet from `syscage install containerd` (without --write) by hand")
    return text


def _refuse_if_imports_replace_cri(cfg: ContainerdConfig) -> None:
    """In version 2 an imported file defining the CRI plugin replaces the main file's CRI section, so an
    edit of the main file would have no effect: say which file to edit instead."""
    imports = cfg.data.get("imports") or []
    if not isinstance(imports, list):
        raise SyscageError(f"{cfg.path}: `imports` is not an array", "make it a list of file paths")
    for pattern in imports:
        for imported in _expand_import(str(pattern), cfg.path)[1]:
            try:
                data = tomli.loads(imported.read_text())
            except (OSError, UnicodeDecodeError, tomli.TOMLDecodeError):
                continue  # containerd itself reports unreadable imports
            if _get(data, ("plugins", CRI_PLUGIN[2])) is not None:
                raise SyscageError(
                    f"{imported} (imported by {cfg.path}) defines the CRI plugin, which replaces the main "
                    "config's CRI section in containerd 1.x",
                    f"install into that file instead: syscage install containerd --config {imported} --write")


# --- podman / CRI-O hooks.d ---------------------------------------------------------------------------


DEFAULT_HOOK_TIMEOUT: int = Config._field_defaults["hook_timeout"]


def hooks_json(hook_path: Path, timeout: int = DEFAULT_HOOK_TIMEOUT, config_file: Path | None = None) -> str:
    """The OCI hooks.d file (schema 1.0.0) for podman and CRI-O; the shipped file is this with the default path.
    config_file: a config other than the default, passed to the hook as SYSCAGE_CONFIG (a hook gets no other
    environment from the engine)."""
    hook: dict[str, Any] = {"path": str(hook_path), "args": ["syscage-hook", "auto"], "timeout": timeout}
    if config_file is not None:
        hook["env"] = [f"SYSCAGE_CONFIG={config_file}"]
    doc = {
        "version": "1.0.0",
        # "auto": one file serves both stages; the hook reads the phase from the state's status.
        "hook": hook,
        # enforce needs spec changes before the runtime starts, which only the wrapper can make.
        "when": {"annotations": {r"^io\.syscage\.mode$": "^(learn|complain)$"}},
        "stages": ["prestart", "poststop"],
    }
    return json.dumps(doc, indent=2) + "\n"


def install_hooks_dir(directory: Path, hook_path: Path, timeout: int = DEFAULT_HOOK_TIMEOUT,
                      config_file: Path | None = None) -> Path | None:
    """Write DIR/syscage.json; returns its path, or None if it already had this content."""
    target = directory / HOOKS_FILE_NAME
    content = hooks_json(hook_path, timeout, config_file).encode()
    if _read_or_none(target) == content:
        return None
    try:
        directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        write_atomically(target, content, 0o644)
    except OSError as exc:
        raise SyscageError(f"cannot write {target}: {exc}", "run as root, or choose another directory") from None
    return target


# --- command line -------------------------------------------------------------------------------------


def cmd_install_containerd(config: Config, args: argparse.Namespace) -> int:
    config_path = Path(args.config)
    if not args.write:
        print(describe_containerd(config_path, args.name, args.via, args.runtime_binary), end="")
        return 0
    try:
        report = install_containerd(config_path, args.name, args.via, args.runtime_binary)
    except OSError as exc:
        raise SyscageError(f"cannot write containerd's config: {exc}", "run as root, or check the path") from None
    if not report.changed:
        print(f"runtime {args.name!r} is already configured in {config_path}; nothing written")
        return 0
    for path in report.written:
        print(f"wrote {path}")
    if report.backup:
        print(f"backup of the original config: {report.backup}")
    for note in report.notes:
        print(f"note: {note}")
    if args.via == "shim":
        print(f"make sure {SHIM_BINARY} is on containerd's PATH (e.g. /usr/local/bin)")
    print("restart containerd to load it: systemctl restart containerd")
    return 0


def cmd_install_hooks_dir(config: Config, args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    from syscage.config import DEFAULT_CONFIG_PATH

    # A config other than the default (SYSCAGE_CONFIG) is named in the hook's environment.
    own = config.source if config.source is not None and config.source != DEFAULT_CONFIG_PATH else None
    written = install_hooks_dir(directory, config.hook_path, config.hook_timeout, own)
    if written is None:
        print(f"{directory / HOOKS_FILE_NAME} is already up to date; nothing written")
    else:
        print(f"wrote {written} (runs {config.hook_path} for containers annotated io.syscage.mode=learn|complain)")
    return 0


def add_install_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `install` and its subcommands on the CLI's subparsers object."""
    parser = subparsers.add_parser("install", help="configure containerd, podman or CRI-O to use syscage",
                                   description="Configure a container engine to use syscage.")
    sub = parser.add_subparsers(metavar="TARGET")

    def show_help(config: Config, args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=show_help)

    p = sub.add_parser("containerd", help="add a syscage runtime handler to containerd's CRI config",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(DEFAULT_CONTAINERD_CONFIG),
                   help=f"containerd's config file (default {DEFAULT_CONTAINERD_CONFIG})")
    p.add_argument("--via", choices=VIAS, default="shim",
                   help=f"shim: runtime_type {SHIM_RUNTIME_TYPE}; binary-name: runc shim with "
                        "options.BinaryName = the runtime binary (default shim)")
    p.add_argument("--runtime-binary", default=DEFAULT_RUNTIME_BINARY,
                   help=f"syscage-runtime's absolute path, for --via binary-name (default {DEFAULT_RUNTIME_BINARY})")
    p.add_argument("--name", default=DEFAULT_RUNTIME_NAME,
                   help=f"runtime handler name, the RuntimeClass handler (default {DEFAULT_RUNTIME_NAME})")
    p.add_argument("--write", action="store_true",
                   help="change the config (with a backup) instead of printing what to add")
    p.set_defaults(func=cmd_install_containerd)

    p = sub.add_parser("hooks-dir", help="write the OCI hooks.d file for podman / CRI-O",
                       description="Write DIR/syscage.json, the hooks.d file that runs syscage-hook for learning "
                                   "containers (podman: /usr/share/containers/oci/hooks.d; CRI-O: its hooks_dir).")
    p.add_argument("dir", metavar="DIR", help="hooks directory, e.g. /etc/containers/oci/hooks.d")
    p.set_defaults(func=cmd_install_hooks_dir)

    p = sub.add_parser("kubernetes", help="print the DaemonSet (sets syscage up on every node) and the RuntimeClass",
                       description="A Namespace, a privileged DaemonSet that runs the node set-up (syscage's commands "
                       "onto the host, /etc/syscage/config.toml, `syscage install containerd --write`) and then the "
                       "tracer, and the RuntimeClass whose handler is the runtime it writes. deploy/kubernetes/ holds "
                       "the default rendering.")
    p.add_argument("--image", default=None, help="the syscage image (default localhost/syscage:latest)")
    p.add_argument("--namespace", default=None, help="default syscage-system")
    p.add_argument("--handler", default=DEFAULT_RUNTIME_NAME,
                   help=f"runtime handler name (default {DEFAULT_RUNTIME_NAME})")
    p.add_argument("--via", choices=VIAS, default="shim", help="as for `syscage install containerd`")
    p.set_defaults(func=cmd_install_kubernetes)
    return parser


def cmd_install_kubernetes(config: Config, args: argparse.Namespace) -> int:
    from syscage.kubernetes import Node, render

    _check_name(args.handler)
    node = Node(handler=args.handler, via=args.via)
    node = node._replace(**{k: v for k, v in (("image", args.image), ("namespace", args.namespace)) if v})
    print(render(node), end="")
    return 0
