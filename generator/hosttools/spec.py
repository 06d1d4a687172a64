"""``spec2def`` (ReactOS ``sdk/tools/spec2def``): a module's ``.spec`` export list, its ``.def`` files and names.

A ``.spec`` line (``;`` or ``#`` start comments, also after a token)::

    <@ or ordinal> <convention> [-option ...] <Name>[(<argument types>)] [<Target>]

- conventions: ``stdcall``, ``cdecl`` (``varargs`` is the same), ``fastcall``, ``thiscall``, ``extern`` (data: no
  argument list) and ``stub`` (argument list optional; with one, or with a ``Name@N`` name, it is a stdcall stub);
- argument types: ``long double ptr str wstr int64 int128 float``;
- options: ``-arch=a,b`` (only for those architectures; ``win64``/``win32`` match every 64/32-bit one),
  ``-i386``, ``-version=V[,V...]`` with ``V`` = ``0xA`` | ``0xA+`` (to 0xFFF) | ``0xA-0xB`` (an export only for
  export versions in a range), ``-private`` (not in the import library), ``-noname``/``-ordinal`` (export by
  ordinal; need an explicit one), ``-impsym`` (an import-library-only alias; needs a Target), ``-stub``,
  ``-norelay``, ``-ret64``, ``-register``; unknown options are ignored with a warning, as upstream does;
- Target: an internal name (``IoReadPartitionTable(...) HalpReadPartitionTable``) or a forwarder ``module.Name``.

Outputs, as upstream's GCC mode writes them for a 64-bit architecture (no stdcall decoration there):
the DLL's export ``.def`` (``Name[=Target] @ordinal [NONAME] [PRIVATE|DATA]``, ordinals numbered in file order
where the spec gives none), the import library's ``.def`` (``--implib``: no private exports, import symbols as
``Name==Target``, ordinals only where asked for) and the plain list of exported names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from generator.hosttools import HostToolError

CONVENTIONS = {"stdcall": "stdcall", "cdecl": "cdecl", "varargs": "cdecl", "fastcall": "fastcall",
               "thiscall": "thiscall", "extern": "extern", "stub": "stub"}
# argument type -> bytes it takes on the i386 stack (spec2def's stdcall @N; 4 for pointers there)
ARG_BYTES = {"long": 4, "double": 8, "ptr": 4, "str": 4, "wstr": 4, "int64": 8, "int128": 16, "float": 4}
FLAGS = ("private", "noname", "impsym", "ordinal", "stub", "norelay", "ret64", "register")
ARCHES = ("i386", "x86_64", "ia64", "arm", "arm64", "ppc")
_ARCH_ALIASES = {"amd64": "x86_64", "x86": "i386"}
_SEPARATORS = frozenset(chr(c) for c in range(0, 45) if chr(c) not in "$#") | frozenset(":;<=>")
_VERSION_ITEM = re.compile(r"(?:0x)?([0-9A-Fa-f]+)(?:(\+)|-(?:0x)?([0-9A-Fa-f]+))?$")


class SpecError(HostToolError):
    """A ``.spec`` file cannot be used; the message names ``file:line`` and what was expected."""


@dataclass(frozen=True)
class Export:
    """One export line of a ``.spec`` file, before architecture and version filtering."""

    path: Path
    line: int
    ordinal: int | None                   # explicit ordinal, None for "@"
    convention: str                       # stdcall cdecl fastcall thiscall extern stub
    name: str                             # "@" asks for an ordinal-only export
    args: tuple[str, ...] = ()
    target: str | None = None
    flags: frozenset[str] = frozenset()
    arches: tuple[str, ...] | None = None  # -arch= list, None: every architecture
    i386_only: bool = False
    versions: tuple[tuple[int, int], ...] | None = None  # -version= ranges, None: every version

    def for_arch(self, arch: str) -> bool:
        """Whether the line applies to ``arch`` (spec2def's ``-a=``: i386, x86_64, arm, arm64, ...)."""
        arch = normalize_arch(arch)
        if self.i386_only and arch != "i386":
            return False
        if self.arches is None:
            return True
        family = "win64" if arch in ("x86_64", "ia64", "arm64") else "win32"
        return arch in self.arches or family in self.arches

    def for_version(self, version: int) -> bool:
        """Whether the line applies to export version ``version`` (DLL_EXPORT_VERSION, e.g. 0x502)."""
        return self.versions is None or any(lo <= version <= hi for lo, hi in self.versions)

    @property
    def where(self) -> str:
        """``file:line`` of the line, for messages."""
        return f"{self.path}:{self.line}"

    @property
    def is_forwarder(self) -> bool:
        """The target names another module's export (``module.Name``)."""
        return self.target is not None and "." in self.target

    @property
    def is_stub(self) -> bool:
        """The export is implemented by a generated stub (spec2def's stubs file), not by the module's code."""
        return self.convention == "stub" or "stub" in self.flags

    @property
    def stack_bytes(self) -> int:
        """The i386 stdcall argument size (``Name@N``)."""
        return sum(ARG_BYTES[a] for a in self.args)


@dataclass
class SpecFile:
    """A parsed ``.spec`` file: every export line in order, and the warnings upstream would print."""

    path: Path
    exports: list[Export]
    warnings: list[str] = field(default_factory=list)

    def selected(self, arch: str, version: int) -> list[Export]:
        """The lines that apply to ``arch`` and ``version``, in file order; duplicate names are an error."""
        chosen = [e for e in self.exports if e.for_arch(arch) and e.for_version(version)]
        seen: dict[str, Export] = {}
        for e in chosen:
            if e.name == "@":
                continue
            name = plain_name(e.name)
            if name in seen:
                raise SpecError(f"{e.where}: {name} is exported twice for {arch}, version {version:#x} "
                                f"(also at line {seen[name].line})")
            seen[name] = e
        return chosen


def normalize_arch(arch: str) -> str:
    """spec2def's architecture name for ``arch`` (``amd64`` -> ``x86_64``); unknown names are an error."""
    arch = _ARCH_ALIASES.get(arch.lower(), arch.lower())
    if arch not in ARCHES:
        raise SpecError(f"unknown architecture {arch!r} (expected one of {', '.join(ARCHES)} or amd64)")
    return arch


def plain_name(name: str) -> str:
    """The undecorated name a 64-bit export table holds: ``_Name@12`` -> ``Name``, anything else as is."""
    if name.startswith("_") and "@" in name[1:]:
        return name[1:name.index("@", 1)]
    return name


def parse_spec(path: Path) -> SpecFile:
    """Read a ``.spec`` file; raises :class:`SpecError` naming ``file:line`` for a malformed line."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc}") from exc
    spec = SpecFile(path, [])
    for number, line in enumerate(text.split("\n"), start=1):
        export = _parse_line(path, number, line.rstrip("\r"), spec.warnings)
        if export is not None:
            spec.exports.append(export)
    return spec


def _tokens(line: str) -> list[str]:
    """Split a line into tokens: words, ``(`` and ``)``; a ``;`` or ``#`` after blanks ends the line."""
    tokens: list[str] = []
    i = 0
    while i < len(line):
        c = line[i]
        if c in " \t":
            i += 1
            if i < len(line) and line[i] in ";#":
                break
            continue
        if c in "()":
            tokens.append(c)
            i += 1
            continue
        j = i
        while j < len(line) and line[j] not in " \t()":
            j += 1
        tokens.append(line[i:j])
        i = j
    return tokens


def _parse_line(path: Path, number: int, line: str, warnings: list[str]) -> Export | None:
    """One line -> an :class:`Export`, or None for a blank or comment line."""
    stripped = line.lstrip(" \t")
    if not stripped or stripped[0] in ";#":
        return None
    where = f"{path}:{number}"
    tokens = _tokens(stripped)
    head = tokens.pop(0)
    if head == "@":
        ordinal = None
    elif head.isdigit():
        ordinal = int(head)
        if ordinal > 0xFFFE:
            raise SpecError(f"{where}: ordinal {ordinal} out of range (expected 0..65534)")
    else:
        raise SpecError(f"{where}: expected '@' or an ordinal number at the start of the line, got {head!r}")
    if not tokens:
        raise SpecError(f"{where}: expected a calling convention after {head!r}")
    word = tokens.pop(0)
    if word not in CONVENTIONS:
        raise SpecError(f"{where}: invalid calling convention {word!r} (expected one of "
                        f"{', '.join(CONVENTIONS)})")
    convention = CONVENTIONS[word]
    flags: set[str] = set()
    arches: tuple[str, ...] | None = None
    versions: tuple[tuple[int, int], ...] | None = None
    i386_only = False
    while tokens and tokens[0].startswith("-"):
        option = tokens.pop(0)
        key, _, value = option[1:].partition("=")
        if key == "arch" and value:
            arches = tuple(a for a in value.split(",") if a)
        elif key == "version" and value:
            versions = tuple(_version_range(where, item) for item in value.split(","))
        elif key == "i386" and not value:
            i386_only = True
        elif key in FLAGS and not value:
            flags.add(key)
        else:
            warnings.append(f"{where}: ignored option {option!r}")
    if not tokens:
        raise SpecError(f"{where}: expected the export name")
    name = tokens.pop(0)
    if name in "()" or any(c in _SEPARATORS for c in name):
        raise SpecError(f"{where}: expected an export name, got {name!r}")
    args: list[str] = []
    has_list = bool(tokens) and tokens[0] == "("
    if convention == "extern" and has_list:
        raise SpecError(f"{where}: an extern (data) export takes no argument list")
    if convention not in ("extern", "stub") and not has_list:
        raise SpecError(f"{where}: expected '(' and the argument types after {name}")
    if has_list:
        tokens.pop(0)
        while True:
            if not tokens:
                raise SpecError(f"{where}: expected ')' to close the argument list of {name}")
            arg = tokens.pop(0)
            if arg == ")":
                break
            if arg not in ARG_BYTES:
                raise SpecError(f"{where}: unrecognized argument type {arg!r} (expected one of "
                                f"{', '.join(ARG_BYTES)})")
            args.append(arg)
    target = None
    if tokens:
        target = tokens.pop(0)
        if target in "()" or any(c in _SEPARATORS for c in target):
            raise SpecError(f"{where}: expected an internal name or module.Name as target, got {target!r}")
        flags.add("norelay")
    if tokens:
        raise SpecError(f"{where}: excess token(s) at end of definition: {' '.join(tokens)!r}")
    if convention == "stub":
        if args:
            convention, flags = "stdcall", flags | {"stub"}
        elif not name.startswith("?") and "@" in name[1:]:
            # a decorated stub name carries its stack size: Name@12 is a stdcall stub of three longs
            cut = name.index("@", 1)
            size = name[cut + 1:]
            if not size.isdigit():
                raise SpecError(f"{where}: expected a byte count after '@' in {name!r}")
            name, args = name[:cut], ["long"] * (int(size) // 4)
            convention, flags = "stdcall", flags | {"stub"}
    if name == "@":
        flags |= {"noname", "ordinal"}
    if flags & {"noname", "ordinal"} and ordinal is None:
        raise SpecError(f"{where}: an export by ordinal (-noname, -ordinal or '@' as name) needs an ordinal number "
                        "instead of '@'")
    if "impsym" in flags and target is None:
        raise SpecError(f"{where}: -impsym needs a target name")
    return Export(path, number, ordinal, convention, name, tuple(args), target, frozenset(flags), arches, i386_only,
                  versions)


def _version_range(where: str, item: str) -> tuple[int, int]:
    """``0x502``, ``0x600+`` or ``0x400-0x502`` -> (first, last); versions are hexadecimal."""
    m = _VERSION_ITEM.match(item)
    if not m:
        raise SpecError(f"{where}: expected -version=0xA, 0xA+ or 0xA-0xB, got {item!r}")
    low = int(m.group(1), 16)
    high = 0xFFF if m.group(2) else int(m.group(3), 16) if m.group(3) else low
    if low > high:
        raise SpecError(f"{where}: invalid version range {item!r} (start above end)")
    return low, high


def assign_ordinals(exports: list[Export], *, implib: bool) -> dict[int, int]:
    """Ordinals of ``exports`` (already filtered): explicit ones where they count, then 1, 2, ... in file order.

    An explicit ordinal counts in the DLL's def always, in the import library's only with ``-ordinal`` or
    ``-noname``. Returns {index in ``exports``: ordinal}; a duplicate ordinal is an error.
    """
    used: dict[int, Export] = {}
    result: dict[int, int] = {}
    for index, e in enumerate(exports):
        if _has_fixed_ordinal(e, implib):
            if e.ordinal in used:
                raise SpecError(f"{e.where}: ordinal {e.ordinal} already used at line {used[e.ordinal].line}")
            used[e.ordinal] = e
            result[index] = e.ordinal
    following = 1
    for index, e in enumerate(exports):
        if index in result:
            continue
        while following in used:
            following += 1
        result[index] = following
        used[following] = e
    return result


def _has_fixed_ordinal(e: Export, implib: bool) -> bool:
    return bool(e.flags & {"ordinal", "noname"}) or (not implib and e.ordinal is not None)


def render_def(spec: SpecFile, dll_name: str, *, arch: str = "x86_64", version: int = 0x502,
               implib: bool = False) -> str:
    """The ``.def`` text: the DLL's exports (for ld) or, with ``implib``, its import library's (for dlltool).

    Only 64-bit architectures are written (their names carry no stdcall decoration). A DLL def of a spec with
    stubs is refused: the stubs' C file is not generated here, so such a DLL would not link.
    """
    arch = normalize_arch(arch)
    if arch == "i386":
        raise SpecError(f"{spec.path}: .def output with i386 stdcall/fastcall decoration is not implemented")
    exports = spec.selected(arch, version)
    if not implib:
        stubs = [e for e in exports if e.is_stub and not e.name.startswith("?")]
        if stubs:
            raise SpecError(f"{stubs[0].where}: {stubs[0].name} is a stub export; generating stub implementations "
                            "is not implemented")
    ordinals = assign_ordinals(exports, implib=implib)
    lines = [f"; Generated by gen2hal from {spec.path.name} ({arch}, export version {version:#x}"
             f"{', import library' if implib else ''}). Do not edit.", "", f"NAME {dll_name}", "", "EXPORTS"]
    for index, e in enumerate(exports):
        if implib and "private" in e.flags:
            continue
        if "impsym" in e.flags and not implib:
            continue
        ordinal = ordinals[index]
        name = f"ordinal{ordinal}" if e.name == "@" else plain_name(e.name)
        entry = f" {name}"
        if e.target is not None:
            entry += ("==" if "impsym" in e.flags else "=") + plain_name(e.target)
        elif e.is_stub and e.name.startswith("?"):
            entry += f"=stub_function{e.line}"        # C++ stubs go to numbered C stubs
        if _has_fixed_ordinal(e, implib) or not implib:
            entry += f" @{ordinal}"
        if "noname" in e.flags or ("ordinal" in e.flags and implib):
            # dlltool imports by ordinal only when the name is absent
            entry += " NONAME"
        if "private" in e.flags:
            entry += " PRIVATE"
        elif e.convention == "extern":
            entry += " DATA"
        lines.append(entry)
    return "\n".join(lines) + "\n"


def exported_names(spec: SpecFile, *, arch: str = "x86_64", version: int = 0x502) -> list[str]:
    """The names the module's export table holds for ``arch`` and ``version``, in spec order.

    Export-by-ordinal entries (``-noname``) have no name and are left out; ``-impsym`` aliases exist only in the
    import library and are left out too.
    """
    return [plain_name(e.name) for e in spec.selected(normalize_arch(arch), version)
            if "noname" not in e.flags and "impsym" not in e.flags]
