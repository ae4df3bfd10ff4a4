"""Path generalisation for AppArmor file rules: which learned paths become patterns, and nothing else.

A learned path names one file a container touched. Two kinds of names change from run to run although
the program does the same thing, and only those are generalised (everything else stays literal, byte for
byte):

1. Per-process /proc entries. The component right after /proc, and the one after /proc/<pid>/task, when it
   is a process id (decimal, no leading zero, at most 4194304 = the kernel's PID_MAX_LIMIT) becomes
   `@{pid}` / `@{tid}` (AppArmor's own variables from tunables/kernelvars):
   `/proc/123/status` -> `/proc/@{pid}/status`, `/proc/1/task/7/stat` -> `/proc/@{pid}/task/@{tid}/stat`.
   `/proc/self`, `/proc/thread-self` and every other /proc name stay as they are; so do numbers deeper
   down (`/proc/@{pid}/fd/3` keeps its 3).

2. Random temporary names the container created itself. Only the first component under /tmp, /var/tmp
   or /dev/shm, and only when the container created that entry (the learned `/tmp/<name>` has access
   "c"); then the entry and everything learned beneath it use the pattern. The name must be one of:
   - `tmp.` + 10 of [A-Za-z0-9]: coreutils mktemp(1)'s default template;
   - `tmp` + 8 of [a-z0-9_]: Python's tempfile (mkstemp, mkdtemp, NamedTemporaryFile) default;
   - PREFIX + 6 of [A-Za-z0-9] (glibc mkstemp/mkdtemp/mkostemp `XXXXXX`), when those 6 characters mix at
     least two of upper case, lower case and digits. The prefix stays literal. About 1 % of mkstemp names
     are all of one kind and stay literal (an enforce run then fails on its new name: a denial, never
     a widening); an ordinary created name such as `/tmp/output` or `/tmp/report` is never generalised.
   The random characters become one AppArmor character class each (`[a-zA-Z0-9]`), so the pattern
   matches names of exactly that shape in that directory and nothing across a `/`.

A generalised path is a sequence of parts: `bytes` (literal, escaped by the renderer) and `Glob` (a fixed
pattern text from this module, never built from input).
"""

from __future__ import annotations

import os
import re
from collections.abc import Container
from typing import NamedTuple


# A NamedTuple, not a dataclass: enforce renders on a container's start path, where importing dataclasses
# (and inspect) would cost more than the rest of the path.
class Glob(NamedTuple):
    """A pattern part of a rendered path: AppArmor glob text defined here, never derived from input."""

    text: str


Part = bytes | Glob

PID = Glob("@{pid}")
TID = Glob("@{tid}")
ALNUM = Glob("[a-zA-Z0-9]")
PY_TEMP_CHAR = Glob("[a-z0-9_]")

PID_MAX_LIMIT = 4194304  # include/linux/threads.h: the largest pid_max the kernel accepts
TEMP_DIRS = (b"/tmp/", b"/var/tmp/", b"/dev/shm/")

_PID = re.compile(rb"[1-9][0-9]{0,6}")
_COREUTILS = re.compile(rb"tmp\.[A-Za-z0-9]{10}")
_PYTHON = re.compile(rb"tmp[a-z0-9_]{8}")
_MKSTEMP = re.compile(rb"(.*)([A-Za-z0-9]{6})", re.DOTALL)


def generalise(path: str, created: Container[str]) -> tuple[Part, ...]:
    """The parts of the rule for `path` (an absolute container path as stored: os.fsdecode of the kernel's
    bytes). `created` holds the learned paths the container created (access "c")."""
    raw = os.fsencode(path)
    parts = _proc(raw)
    if parts is None:
        parts = _temp(raw, created)
    return parts if parts is not None else (raw,)


def _is_pid(component: bytes) -> bool:
    return _PID.fullmatch(component) is not None and int(component) <= PID_MAX_LIMIT


def _proc(raw: bytes) -> tuple[Part, ...] | None:
    if not raw.startswith(b"/proc/"):
        return None
    comps = raw[len(b"/proc/"):].split(b"/")
    if not _is_pid(comps[0]):
        return None
    parts: list[Part] = [b"/proc/", PID]
    rest = comps[1:]
    if len(rest) >= 2 and rest[0] == b"task" and _is_pid(rest[1]):
        parts += [b"/task/", TID]
        rest = rest[2:]
    if rest:
        parts.append(b"/" + b"/".join(rest))
    return tuple(parts)


def _temp(raw: bytes, created: Container[str]) -> tuple[Part, ...] | None:
    for tmp in TEMP_DIRS:
        if not raw.startswith(tmp):
            continue
        name, sep, rest = raw[len(tmp):].partition(b"/")
        if not name or os.fsdecode(tmp + name) not in created:
            return None
        pattern = temp_pattern(name)
        if pattern is None:
            return None
        return (tmp, *pattern, sep + rest) if sep else (tmp, *pattern)
    return None


def temp_pattern(name: bytes) -> tuple[Part, ...] | None:
    """The pattern for one temporary file name, or None when it does not look like a generated one."""
    if _COREUTILS.fullmatch(name):
        return (b"tmp.", *[ALNUM] * 10)
    if _PYTHON.fullmatch(name):
        return (b"tmp", *[PY_TEMP_CHAR] * 8)
    m = _MKSTEMP.fullmatch(name)
    if m is None:
        return None
    prefix, random = m.groups()
    kinds = sum(any(test(chr(c)) for c in random) for test in (str.isupper, str.islower, str.isdigit))
    if kinds < 2:
        return None
    return (prefix, *[ALNUM] * 6) if prefix else tuple([ALNUM] * 6)
