"""Which syscalls can a container's binaries make? Static analysis of ELF code, the Confine approach.

For each program, and each shared library it loads (DT_NEEDED, resolved inside the container's rootfs):
  * direct syscalls: every `syscall` instruction whose number is a constant put in eax/rax before it in the
    same straight-line code (capstone linear sweep); also calls of a syscall dispatcher with a constant
    number (libc's `syscall(n, ...)`: n in edi; Go's syscall.Syscall*: n in rax, its register ABI; a stripped
    Go binary's functions are named from its .gopclntab);
  * library calls: each function a program or library imports is followed, in the library that exports it,
    through that library's direct calls and tail jumps to the syscalls it makes (functions whose address the
    library takes, as stdio's vtables do, count as reachable from any caller: their callers are not known);
  * libc itself contributes only what is reachable from the functions imported from it and from its own
    start-up, not every syscall in it. The dynamic loader's own syscalls are always in.
The result over-approximates what the code can do on some path (and a syscall number computed at run time is
missed: counted as `unknown` per object). It is computed at record time, never on a container's start path:
in two phases for the tracer (hooks.daemon.static_record: `gather` reads and hashes while the rootfs is there,
`analyse_gathered` analyses later), at once for `syscage static` (analyse_programs). Files are read inside the
rootfs only (syscage.inroot), and results are cached per object by content hash. pyelftools and capstone are
imported here only.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syscage.atomic import write_atomically
from syscage.inroot import ContainerRoot, NotReadable

CACHE_VERSION = 2  # 2: stripped Go binaries' functions from .gopclntab
LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib",
            "/usr/local/lib")
PATH_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
# Functions that make the syscall their first argument names, and where that argument is.
DISPATCHERS = {"syscall": "di"}
GO_DISPATCHERS = re.compile(r"^(syscall|golang\.org/x/sys/unix|runtime/internal/syscall|internal/runtime/syscall)"
                            r"\.(Raw)?Syscall6?(\.abi0)?$|^syscall\.(raw)?[sS]yscall(6|_syscall6)?$")
_RIP = re.compile(r"\[rip ([+-]) 0x([0-9a-f]+)\]")
# General registers by every name of theirs -> one key (rax, eax, ax, al -> "a"; r8, r8d -> "r8").
_REG = {**{f"{p}{r}x": r for r in "abcd" for p in ("r", "e", "")}, **{f"{r}l": r for r in "abcd"},
        **{f"{r}h": r for r in "abcd"},
        **{f"{p}{r}": r for r in ("si", "di", "bp", "sp") for p in ("r", "e", "")},
        **{f"{r}l": r for r in ("si", "di", "bp", "sp")},
        **{f"r{n}{s}": f"r{n}" for n in range(8, 16) for s in ("", "d", "w", "b")}}
_CLOBBERED_BY_CALL = ("a", "c", "d", "si", "di", "r8", "r9", "r10", "r11")
_NO_WRITE = ("cmp", "test", "push", "bt", "nop", "endbr64")


class NotAnalysable(Exception):
    """Not an x86-64 ELF object, or unreadable."""


def object_facts(data: bytes, cache_dir: Path | None) -> tuple[dict[str, Any], bool, float]:
    """What one ELF object can do (see _facts), from the cache when this very content was analysed before.
    Returns (facts, from_cache, seconds spent)."""
    started = time.monotonic()
    facts = cached_facts(hashlib.sha256(data).hexdigest(), cache_dir)
    if facts is not None:
        return facts, True, time.monotonic() - started
    return analyse_object(data, cache_dir), False, time.monotonic() - started


def cached_facts(digest: str, cache_dir: Path | None) -> dict[str, Any] | None:
    if cache_dir is None:
        return None
    try:
        doc = json.loads((cache_dir / f"{digest}.json").read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("version") == CACHE_VERSION else None


def analyse_object(data: bytes, cache_dir: Path | None, name: str = "") -> dict[str, Any]:
    """Analyse one object's content (slow: seconds for libc, tens of seconds for a large Go binary) and cache it."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    started = time.monotonic()
    digest = hashlib.sha256(data).hexdigest()
    try:
        elf = ELFFile(io.BytesIO(data))
        if elf["e_machine"] != "EM_X86_64":
            raise NotAnalysable(f"{name}: not x86-64 ({elf['e_machine']})")
        facts = _facts(elf)
    except NotAnalysable:
        raise
    except (ELFError, OSError, ValueError) as exc:
        raise NotAnalysable(f"{name}: not an ELF object ({exc})") from None
    except Exception as exc:  # hostile or odd content (the container's): this object is not analysable, no more
        raise NotAnalysable(f"{name}: cannot be analysed ({type(exc).__name__}: {exc})") from None
    facts.update(version=CACHE_VERSION, sha256=digest, seconds=round(time.monotonic() - started, 3))
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(cache_dir / f"{digest}.json", json.dumps(facts, sort_keys=True).encode(), 0o644,
                         durable=False)  # a cache
    return facts


def links_of(data: bytes, name: str) -> tuple[str | None, list[str]]:
    """(PT_INTERP, DT_NEEDED) of an ELF object: what else the loader maps for it. Cheap (headers only)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(data))
        if elf["e_machine"] != "EM_X86_64":
            raise NotAnalysable(f"{name}: not x86-64 ({elf['e_machine']})")
        interp = next((seg.get_interp_name() for seg in elf.iter_segments() if seg["p_type"] == "PT_INTERP"), None)
        needed = [t.needed for section in elf.iter_sections() if isinstance(section, DynamicSection)
                  for t in section.iter_tags() if t.entry.d_tag == "DT_NEEDED"]
    except NotAnalysable:
        raise
    except (ELFError, OSError, ValueError, KeyError) as exc:
        raise NotAnalysable(f"{name}: not an ELF object ({exc})") from None
    except Exception as exc:  # hostile or odd content (the container's): this object is not analysable, no more
        raise NotAnalysable(f"{name}: cannot be read as ELF ({type(exc).__name__}: {exc})") from None
    return interp, needed


def _facts(elf: Any) -> dict[str, Any]:
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.relocation import RelocationSection
    from elftools.elf.sections import SymbolTableSection

    needed: list[str] = []
    interp = None
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_INTERP":
            interp = seg.get_interp_name()
    imports: set[str] = set()
    exports: dict[str, int] = {}
    starts: set[int] = set()
    names: dict[int, str] = {}
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            needed.extend(t.needed for t in section.iter_tags() if t.entry.d_tag == "DT_NEEDED")
        if isinstance(section, SymbolTableSection):
            dynamic = section.name == ".dynsym"
            for sym in section.iter_symbols():
                if sym["st_info"]["type"] not in ("STT_FUNC", "STT_GNU_IFUNC") and sym["st_shndx"] != "SHN_UNDEF":
                    continue
                if sym["st_shndx"] == "SHN_UNDEF":
                    if dynamic and sym.name:
                        imports.add(sym.name)
                    continue
                if sym["st_value"]:
                    starts.add(sym["st_value"])
                    names.setdefault(sym["st_value"], sym.name)
                    if dynamic and sym["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK"):
                        exports[sym.name] = sym["st_value"]
    if not names:  # stripped: a Go binary still names its functions in its pc-line table
        for entry, name in go_functions(elf).items():
            starts.add(entry)
            names.setdefault(entry, name)
    text = [s for s in elf.iter_sections() if s["sh_flags"] & 0x4 and s["sh_type"] == "SHT_PROGBITS"
            and s.name not in (".plt", ".plt.got", ".plt.sec")]
    ranges = [(s["sh_addr"], s["sh_addr"] + s["sh_size"]) for s in text]

    def in_text(addr: int) -> bool:
        return any(lo <= addr < hi for lo, hi in ranges)

    taken: set[int] = set()
    for section in elf.iter_sections():
        if isinstance(section, RelocationSection) and section.is_RELA():
            for rel in section.iter_relocations():
                if rel["r_info_type"] == 8 and in_text(rel["r_addend"]):  # R_X86_64_RELATIVE to code
                    taken.add(rel["r_addend"])
    entry = elf["e_entry"]
    if entry:
        starts.add(entry)
        taken.add(entry)
    plt = _plt_names(elf)
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.skipdata = True
    insns: list[tuple[int, int, str, str]] = []
    for s in text:
        insns.extend(md.disasm_lite(s.data(), s["sh_addr"]))
    for addr, size, mnem, ops in insns:  # call targets start functions; rip-relative code addresses are taken
        if mnem == "call" and ops.startswith("0x"):
            target = int(ops, 16)
            if in_text(target):
                starts.add(target)
        elif mnem == "lea" and "rip" in ops:
            m = _RIP.search(ops)
            if m:
                target = addr + size + (int(m.group(2), 16) * (1 if m.group(1) == "+" else -1))
                if in_text(target):
                    taken.add(target)
                    starts.add(target)
    order = sorted(starts)
    index = {a: i for i, a in enumerate(order)}
    syscalls: dict[int, set[int]] = {}
    edges: dict[int, set[int]] = {}
    imported_calls: dict[int, set[str]] = {}
    unknown = 0
    direct: set[int] = set()
    go_dispatch = {a for a, n in names.items() if GO_DISPATCHERS.match(n)}
    region, bound = -1, -1
    nxt = 0
    regs: dict[str, int] = {}
    # Register constants carried along forward jumps inside a function (to where the jump lands); code after
    # an unconditional jump or ret is reached only by jumps: it starts from what they carried.
    carried: dict[int, dict[str, int]] = {}
    dead = False
    for addr, _size, mnem, ops in insns:
        if addr >= bound:  # a new function: nothing known about the registers
            region = bisect.bisect_right(order, addr) - 1
            nxt = bisect.bisect_right(order, addr)
            bound = order[nxt] if nxt < len(order) else 1 << 64
            regs, carried, dead = {}, {}, False
        if addr in carried:
            there = carried.pop(addr)
            regs = there if dead else {r: v for r, v in regs.items() if there.get(r) == v}
            dead = False
        if mnem == "syscall":
            if "a" not in regs:
                unknown += 1
            else:
                syscalls.setdefault(region, set()).add(regs["a"])
                direct.add(regs["a"])
            for reg in ("a", "c", "r11"):
                regs.pop(reg, None)
            continue
        if mnem in ("call", "jmp") or mnem.startswith("j"):
            if ops.startswith("0x"):
                target = int(ops, 16)
                if mnem != "call" and addr < target < bound:
                    known = carried.get(target)
                    carried[target] = dict(regs) if known is None else {
                        r: v for r, v in regs.items() if known.get(r) == v}
                name = plt.get(target)
                local = names.get(target) if name is None else None  # a static binary's own syscall()
                if name in DISPATCHERS or local in DISPATCHERS or target in go_dispatch:
                    value = regs.get(DISPATCHERS.get(name or local or "", "a"))
                    if value is not None:
                        syscalls.setdefault(region, set()).add(value)
                        direct.add(value)
                if name is not None:
                    imported_calls.setdefault(region, set()).add(name)
                elif target in index and (mnem == "call" or not (order[region] <= target < bound)):
                    edges.setdefault(region, set()).add(index[target])
                elif mnem == "jmp" and in_text(target):
                    edges.setdefault(region, set()).add(bisect.bisect_right(order, target) - 1)
            if mnem == "call":
                regs = {r: v for r, v in regs.items() if r not in _CLOBBERED_BY_CALL}
            elif mnem == "jmp":
                regs, dead = {}, True
            continue
        if mnem in ("ret", "hlt", "ud2"):
            regs, dead = {}, True
            continue
        if mnem not in _NO_WRITE:
            _track(regs, mnem, ops)
    taken_regions = sorted({bisect.bisect_right(order, a) - 1 for a in taken} - {-1})
    closure = _closures(len(order), syscalls, edges, imported_calls)
    always_nrs: set[int] = set()
    always_imports: set[str] = set()
    for r in taken_regions:
        always_nrs |= closure[r][0]
        always_imports |= closure[r][1]
    export_map = {name: [sorted(closure[index[a]][0]), sorted(closure[index[a]][1])]
                  for name, a in exports.items() if a in index}
    return {"interp": interp, "needed": needed, "imports": sorted(imports), "exports": export_map,
            "direct": sorted(direct), "always": [sorted(always_nrs), sorted(always_imports)],
            "unknown_syscall_sites": unknown, "instructions": len(insns)}


def go_functions(elf: Any) -> dict[int, str]:
    """Entry address -> name of every function in a Go binary's .gopclntab (Go 1.16 and later): how a stripped
    Go binary (Debian strips them) still shows where syscall.Syscall and its kin are. Empty when there is none
    or its format is not known."""
    import struct

    section = elf.get_section_by_name(".gopclntab")
    text = elf.get_section_by_name(".text")
    if section is None or text is None:
        return {}
    data = section.data()
    if len(data) < 8 or data[4:6] != b"\0\0" or data[7] != 8:
        return {}
    magic = struct.unpack_from("<I", data)[0]
    if magic not in (0xFFFFFFFA, 0xFFFFFFF0, 0xFFFFFFF1):  # 1.16-1.17, 1.18-1.19, 1.20+
        return {}

    def word(n: int) -> int:
        return int(struct.unpack_from("<Q", data, 8 + 8 * n)[0])

    new = magic != 0xFFFFFFFA
    nfunc = word(0)
    names_at, funcs = (word(3), word(7)) if new else (word(2), word(6))
    field0 = 4 if new else 8  # _func's first field: an entry offset (uint32) since 1.18, a pc before
    out: dict[int, str] = {}
    try:
        for i in range(min(nfunc, 1 << 20)):
            if new:
                entry_off, func_off = struct.unpack_from("<II", data, funcs + 8 * i)
                entry = text["sh_addr"] + entry_off
            else:
                entry, func_off = struct.unpack_from("<QQ", data, funcs + 16 * i)
            name_off = struct.unpack_from("<i", data, funcs + func_off + field0)[0]
            start = names_at + name_off
            end = data.find(b"\0", start, start + 512)
            if end > start:
                out[entry] = data[start:end].decode(errors="replace")
    except struct.error:
        return out
    return out


def _wide(reg: str) -> bool:
    """A 32- or 64-bit general register (a constant moved there is whole)."""
    return reg in _REG and (reg[0] == "e" or (reg[0] == "r" and not reg.endswith(("w", "b"))))


def _track(regs: dict[str, int], mnem: str, ops: str) -> None:
    """Update the known register constants for one instruction: `mov r32/r64, imm`, `mov r, r` copying a
    known one and `xor r, r` set one; anything else writing a register makes it unknown."""
    dest, _, src = ops.partition(", ")
    key = _REG.get(dest)
    if key is None:
        return
    value: int | None = None
    if _wide(dest):
        if mnem == "mov":
            if src.startswith("0x") or src.isdigit():
                value = int(src, 16) if src.startswith("0x") else int(src)
            elif _wide(src):
                value = regs.get(_REG[src])
        elif mnem == "xor" and dest == src:
            value = 0
    if value is not None and 0 <= value < 1024:
        regs[key] = value
    else:
        regs.pop(key, None)


def _closures(n: int, syscalls: dict[int, set[int]], edges: dict[int, set[int]],
              imported: dict[int, set[str]]) -> list[tuple[set[int], set[str]]]:
    """For every region: the syscalls and imported functions reachable through calls and tail jumps
    (iterative, by strongly connected components: libc has cycles)."""
    index = [-1] * n
    low = [0] * n
    on = [False] * n
    stack: list[int] = []
    comp = [-1] * n
    comps: list[list[int]] = []
    counter = 0
    for root in range(n):
        if index[root] != -1:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on[root] = True
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if index[w] == -1:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on[w] = True
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    advanced = True
                    break
                if on[w]:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                members = []
                while True:
                    w = stack.pop()
                    on[w] = False
                    comp[w] = len(comps)
                    members.append(w)
                    if w == v:
                        break
                comps.append(members)
    # Tarjan emits components in reverse topological order: callees first.
    result: list[tuple[set[int], set[str]]] = [(set(), set())] * len(comps)
    for c, members in enumerate(comps):
        nrs: set[int] = set()
        names: set[str] = set()
        for v in members:
            nrs |= syscalls.get(v, set())
            names |= imported.get(v, set())
            for w in edges.get(v, ()):
                if comp[w] != c:
                    nrs |= result[comp[w]][0]
                    names |= result[comp[w]][1]
        result[c] = (nrs, names)
    return [result[comp[v]] for v in range(n)]


def _plt_names(elf: Any) -> dict[int, str]:
    """PLT stub address -> the imported function it calls (.plt.sec/.plt/.plt.got stubs jump through a GOT
    slot that a JUMP_SLOT or GLOB_DAT relocation names)."""
    from elftools.elf.relocation import RelocationSection

    got: dict[int, str] = {}
    dynsym = elf.get_section_by_name(".dynsym")
    for section in elf.iter_sections():
        if isinstance(section, RelocationSection) and section.is_RELA() and dynsym is not None:
            for rel in section.iter_relocations():
                if rel["r_info_type"] in (6, 7) and rel["r_info_sym"]:  # GLOB_DAT, JUMP_SLOT
                    name = dynsym.get_symbol(rel["r_info_sym"]).name
                    if name:
                        got[rel["r_offset"]] = name
    out: dict[int, str] = {}
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    for name in (".plt.sec", ".plt", ".plt.got"):
        section = elf.get_section_by_name(name)
        if section is None:
            continue
        stub = None
        for addr, size, mnem, ops in md.disasm_lite(section.data(), section["sh_addr"]):
            if mnem == "endbr64" or stub is None or addr % 16 == 0:
                stub = addr if (mnem == "endbr64" or addr % 16 == 0) else stub
            if mnem in ("jmp", "bnd jmp") and "rip" in ops:
                m = _RIP.search(ops)
                if m:
                    slot = addr + size + int(m.group(2), 16) * (1 if m.group(1) == "+" else -1)
                    if slot in got and stub is not None:
                        out[stub] = got[slot]
    return out


# What one record may read into memory for the worker (objects not in the cache yet), and per object.
MAX_OBJECT = 256 << 20
MAX_HELD = 768 << 20
MAX_OBJECTS = 256
MAX_LISTED = 64  # unresolved paths named in the profile; the rest are counted
SCRIPT_DEPTH = 4


@dataclass
class Gathered:
    """Phase one, while the container's rootfs is there: every object the exec'd programs map, read and hashed.
    What the cache knows is facts already; the rest is held as content for phase two (analyse_gathered)."""

    programs: dict[str, tuple[list[str], str | None]] = field(default_factory=dict)  # exe -> (libs, loader)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)  # container path -> facts from the cache
    pending: dict[str, bytes] = field(default_factory=dict)  # container path -> content still to analyse
    seconds: dict[str, float] = field(default_factory=dict)  # container path -> time to read, hash, look up
    unresolved: dict[str, str] = field(default_factory=dict)  # exec'd or needed path -> why it is not analysed
    unresolved_total: int = 0
    absent: list[str] = field(default_factory=list)  # exec'd paths not in the rootfs (a failed exec, a PATH search)
    held: int = 0
    paths_lost: int = 0  # paths the tracer could not record in the run (an exec among them is not analysed)


def resolve_program(rootfs: Path | ContainerRoot, program: str) -> str:
    """A program name or container path -> its path inside the container (symlinks followed inside)."""
    candidates = [program] if "/" in program else [f"{d}/{program}" for d in PATH_DIRS]
    root = rootfs if isinstance(rootfs, ContainerRoot) else ContainerRoot(rootfs)
    try:
        for candidate in candidates:
            if root.exists(candidate):
                return candidate
    finally:
        if root is not rootfs:
            root.close()
    raise NotAnalysable(f"{program}: not found in {root.rootfs} (looked in {', '.join(PATH_DIRS)})")


def _shebang(data: bytes) -> list[str]:
    line = data[2:256].split(b"\n", 1)[0]
    return [w for w in line.decode(errors="replace").split() if w]


def gather(root: ContainerRoot, paths: list[str], cache_dir: Path | None, strict: bool = False) -> Gathered:
    """Read the programs at `paths` (container paths), their loader and shared libraries (DT_NEEDED, breadth
    first as ld.so does) inside `root`. A `#!` script stands for its interpreter. What cannot be read or is not
    an x86-64 ELF object is counted in `unresolved` (strict: raised)."""
    g = Gathered()
    links: dict[str, tuple[str | None, list[str]]] = {}

    def fail(path: str, reason: str, absent: bool = False) -> None:
        reason = reason.split(": ", 1)[1] if reason.startswith(f"{path}: ") else reason
        if strict:
            raise NotAnalysable(f"{path}: {reason}")
        if absent:
            if path not in g.absent and len(g.absent) < MAX_LISTED:
                g.absent.append(path)
            return
        g.unresolved_total += 1
        if len(g.unresolved) < MAX_LISTED:
            g.unresolved[path] = reason

    def take(path: str, data: bytes, inside: str, started: float) -> str:
        if inside in links:
            return inside
        if len(links) >= MAX_OBJECTS:
            raise NotReadable(path, f"more than {MAX_OBJECTS} objects in one run (not analysed)")
        links[inside] = links_of(data, inside)
        facts = cached_facts(hashlib.sha256(data).hexdigest(), cache_dir)
        if facts is not None:
            g.facts[inside] = facts
        else:
            if g.held + len(data) > MAX_HELD:
                raise NotReadable(path, f"the run's objects exceed {MAX_HELD >> 20} MiB (not analysed)")
            g.pending[inside] = data
            g.held += len(data)
        g.seconds[inside] = round(time.monotonic() - started, 3)
        return inside

    def library(exe: str, soname: str) -> str | None:
        for path in [soname] if "/" in soname else [f"{d}/{soname}" for d in LIB_DIRS]:
            started = time.monotonic()
            try:
                data, inside = root.read(path, MAX_OBJECT)
            except NotReadable as exc:
                if exc.absent:
                    continue
                fail(path, exc.reason)
                return None
            try:
                return take(path, data, inside, started)
            except (NotReadable, NotAnalysable) as exc:
                fail(path, str(exc))
                return None
        fail(soname, f"needed by {exe}, not found in {', '.join(LIB_DIRS)}")
        return None

    def program(path: str, depth: int = 0, script: str = "") -> None:
        started = time.monotonic()
        try:
            data, inside = root.read(path, MAX_OBJECT)
        except NotReadable as exc:
            fail(script or path, f"its interpreter {path}: {exc.reason}" if script else exc.reason,
                 exc.absent and not script)
            return
        if data[:2] == b"#!":
            words = _shebang(data)
            if not words or depth >= SCRIPT_DEPTH:
                fail(path, "a script whose interpreter cannot be told")
                return
            target = words[0]
            if Path(target).name == "env" and len(words) > 1 and not words[1].startswith("-"):
                try:
                    target = resolve_program(root, words[1])
                except NotAnalysable as exc:
                    fail(path, str(exc))
                    return
            program(target, depth + 1, script or path)
            return
        try:
            exe = take(path, data, inside, started)
        except (NotReadable, NotAnalysable) as exc:
            fail(script or path, str(exc))
            return
        if exe in g.programs:
            return
        interp_name, needed = links[exe]
        interp = None
        if interp_name:
            interp = library(exe, interp_name)
        order: list[str] = []
        queue, seen = list(needed), set()
        while queue:
            soname = queue.pop(0)
            if soname in seen:
                continue
            seen.add(soname)
            lib = library(exe, soname)
            if lib is not None and lib not in order and lib != exe:
                order.append(lib)
                queue.extend(links[lib][1])
        g.programs[exe] = (order, interp)

    for path in paths:
        program(path)
    return g


def analyse_gathered(g: Gathered, cache_dir: Path | None, strict: bool = False) -> dict[str, Any]:
    """Phase two (slow for what the cache does not know): the static set of the gathered programs: syscall ->
    where it came from, and per object its hash, the analysis time and whether it came from the cache."""
    from syscage.syscalls import syscall_name

    objects = dict(g.facts)
    binaries: dict[str, dict[str, Any]] = {}
    cached = set(g.facts)
    for path, data in list(g.pending.items()):
        started = time.monotonic()
        try:
            # An earlier run's analysis may have cached the same content since this run was gathered.
            facts = cached_facts(hashlib.sha256(data).hexdigest(), cache_dir)
            if facts is not None:
                cached.add(path)
            objects[path] = facts if facts is not None else analyse_object(data, cache_dir, path)
        except NotAnalysable as exc:
            if strict:
                raise
            g.unresolved_total += 1
            if len(g.unresolved) < MAX_LISTED:
                g.unresolved[path] = str(exc).removeprefix(f"{path}: ")
            continue
        finally:
            del g.pending[path]  # the content is not needed any more
        g.seconds[path] = round(g.seconds.get(path, 0.0) + time.monotonic() - started, 3)
    for path, facts in objects.items():
        binaries[path] = {"sha256": facts["sha256"], "cached": path in cached, "seconds": g.seconds.get(path, 0.0),
                          "analysis_seconds": facts["seconds"], "instructions": facts["instructions"],
                          "unknown_syscall_sites": facts["unknown_syscall_sites"]}
    found: dict[int, list[str]] = {}

    def add(nrs: list[int] | set[int], where: str) -> None:
        for nr in nrs:
            places = found.setdefault(nr, [])
            if where not in places and len(places) < 8:
                places.append(where)

    for exe, (libs, interp) in g.programs.items():
        if exe not in objects:
            continue
        add(objects[exe]["direct"], f"{exe} (syscall instruction)")
        if interp is not None and interp in objects:
            add(objects[interp]["direct"], f"{interp} (the dynamic loader)")
        libs = [lib for lib in libs if lib in objects]
        for lib in libs:
            lf = objects[lib]
            if not Path(lib).name.startswith("libc.so"):
                add(lf["direct"], f"{lib} (syscall instruction)")
            else:  # start-up and the functions whose address libc takes (stdio's vtables, atexit handlers)
                add(lf["always"][0], f"{lib} (start-up and address-taken functions)")
        pending = [(name, obj) for obj in [exe, *libs] for name in objects[obj]["imports"]]
        done: set[str] = set()
        while pending:
            name, caller = pending.pop()
            if name in done:
                continue
            done.add(name)
            for lib in libs:
                entry = objects[lib]["exports"].get(name)
                if entry is not None:
                    add(entry[0], f"{lib}: {name} (called by {caller})")
                    pending.extend((n, lib) for n in entry[1])
                    break
    syscalls = {}
    for nr, where in sorted(found.items()):
        name = syscall_name(nr)
        if name:
            syscalls[name] = where
    return {"programs": sorted(g.programs), "binaries": binaries, "syscalls": syscalls,
            "unresolved": dict(g.unresolved), "unresolved_total": g.unresolved_total, "absent": list(g.absent),
            "paths_lost": g.paths_lost}


def analyse_programs(rootfs: Path, programs: list[str], cache_dir: Path | None) -> dict[str, Any]:
    """The static set of `programs` (names or container paths) in `rootfs`, at once (`syscage static`)."""
    try:
        root = ContainerRoot(rootfs)
    except OSError as exc:
        raise NotAnalysable(f"{rootfs}: {exc.strerror}") from None
    with root:
        paths = [resolve_program(root, p) for p in programs]
        static = analyse_gathered(gather(root, paths, cache_dir, strict=True), cache_dir, strict=True)
    return {**static, "programs": programs, "rootfs": str(rootfs)}
