"""One HAL build unit: what a ``hal.dll`` is made of, stated once and read by analyze, generate and SCons.

A unit is a list of translation units, each with its own compile arguments (like a ``compile_commands.json``:
upstream ReactOS gives some components their own defines, e.g. ``CONFIG_SMP`` for ``lib_hal_smp``), the static
libraries linked into the DLL (each again a list of translation units), the export spec, the kernel modules it
imports from, and the link settings. Readers produce units:

- ``generator.unit.reactos``: a ReactOS tree's ``hal/halx86/CMakeLists.txt`` and ``*.cmake`` files, read by
  ``generator.unit.cmake`` (a small CMake interpreter), or a configured build's ``compile_commands.json``;
- ``generator.unit.local``: a unit described by a small TOML file (``hal_src/unit.toml``).

Nothing here knows a file list: every list comes from the tree being read.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class KnownDiagnostic:
    """An error diagnostic a kind of tree is known to produce under libclang, with why it does not matter."""

    file_suffix: str     # the header it occurs in, as a path suffix ("sdk/include/crt/mingw32/intrin_x86.h")
    message: str         # the diagnostic's text, exactly
    why: str

    def matches(self, diag) -> bool:
        """Whether ``diag`` (``generator.clang_front.Diagnostic``) is this known diagnostic."""
        return Path(diag.file).as_posix().endswith(self.file_suffix) and diag.message == self.message


class UnitError(Exception):
    """A build description cannot be read; the message names the file, the line and what was expected."""


def read_data_file(path: Path, kind: str) -> object:
    """The content of a ``toml`` or ``json`` file; :class:`UnitError` naming the file when it cannot be read or
    parsed."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UnitError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text) if kind == "toml" else json.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UnitError(f"{path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UnitError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None


@dataclass(frozen=True)
class Source:
    """One translation unit: a C or assembly file and the arguments it is compiled with.

    ``include_dirs`` and ``defines`` are complete and in compiler order (``-I`` order; ``NAME`` or
    ``NAME=VALUE``); ``component`` names the object library or component the file came from (``generic``,
    ``acpi``, ...), for reports and for scoping; ``target`` is the build target whose settings compile it
    (ReactOS: the object library, ``lib_hal_generic``). A file made at build time from another (ReactOS's
    ``.asm`` sources become ``<generated>/<path>.asm.s`` through the ``asmpp`` host tool) names its input in
    ``generated_from`` and the tool in ``generator``; whoever builds the unit must make it first.
    """

    path: Path
    language: str                      # "c", "asm" or "rc"
    component: str
    include_dirs: tuple[Path, ...]
    defines: tuple[str, ...]
    extra_flags: tuple[str, ...] = ()  # further compiler flags this file needs (e.g. -fms-extensions)
    target: str = ""
    generated_from: Path | None = None
    generator: str = ""


@dataclass
class Library:
    """A static library linked into the unit (only the members the link needs are pulled in)."""

    name: str
    sources: list[Source]


@dataclass
class ExportSpec:
    """Where the DLL's exports come from.

    ``spec``: a ReactOS ``.spec`` file read for ``arch`` and ``version`` (spec2def's rules); or ``names`` with
    ``aliases`` (export -> implementing function) when the unit states its exports directly.
    """

    spec: Path | None = None
    arch: str = "x86_64"
    version: int = 0x502
    names: list[str] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)


@dataclass
class BuildUnit:
    """Everything one HAL DLL is built from."""

    name: str                          # DLL stem: "hal", "halmp"
    tree: Path                         # the tree the paths are relative to in reports (checkout top, hal_src)
    hal_root: Path                     # the HAL's own folder (hal/halx86, hal_src)
    sources: list[Source]
    libraries: list[Library]
    exports: ExportSpec
    imports: list[str]                 # kernel modules the DLL may import from ("ntoskrnl")
    import_spec: dict[str, Path]       # module -> its .spec (ReactOS) when the import library is made from one
    entry: str = "HalInitSystem"
    entry_args_bytes: int = 8          # stdcall argument size (i386 decoration; amd64 ignores it)
    generated_root: Path | None = None  # folder of build-time headers the tool made for this tree
    origin: str = ""                   # where this description was read from (file or files), for messages
    link_flags: list[str] = field(default_factory=list)
    #: libclang errors this kind of tree is known to raise in its headers, reported by name, not refused.
    known_diagnostics: list[KnownDiagnostic] = field(default_factory=list)  # further linker inputs the build states ("-lgcc")

    @property
    def c_sources(self) -> list[Source]:
        """The C translation units of the DLL itself (libraries excluded)."""
        return [s for s in self.sources if s.language == "c"]

    @property
    def asm_sources(self) -> list[Source]:
        """The assembly files of the DLL itself: built, not analysed (libclang does not read them)."""
        return [s for s in self.sources if s.language == "asm"]

    def relative(self, path: Path) -> str:
        """``path`` relative to the HAL's folder when inside it, else to the tree; POSIX form."""
        path = Path(path)
        for base in (self.hal_root, self.tree):
            try:
                return path.resolve().relative_to(base.resolve()).as_posix()
            except ValueError:
                continue
        return path.as_posix()


# ---- reading a unit from a path ---------------------------------------------------------------------------------

class _Kind:
    """A kind of build description: recognises its input and reads the unit from it."""

    label = ""

    def matches(self, path: Path) -> bool:
        """Whether ``path`` holds this kind of description."""
        raise NotImplementedError

    def read(self, path: Path, generated: Path | None, target) -> dict[str, "BuildUnit"]:
        """Every unit the description states, by name."""
        raise NotImplementedError


class _LocalKind(_Kind):
    label = "unit.toml"

    def matches(self, path: Path) -> bool:
        return (path.is_file() and path.suffix == ".toml") or (path / "unit.toml").is_file()

    def read(self, path, generated, target):
        from generator.unit.local import read_local_unit
        unit = read_local_unit(path, target, generated=generated)
        return {unit.name: unit}


class _CompileCommandsKind(_Kind):
    label = "configured build (compile_commands.json)"

    def matches(self, path: Path) -> bool:
        return (path / "compile_commands.json").is_file()

    def read(self, path, generated, target):
        from generator.unit.reactos import read_compile_commands
        return read_compile_commands(path)


class _ReactosKind(_Kind):
    label = "ReactOS tree"

    def matches(self, path: Path) -> bool:
        from generator.unit.reactos import find_top
        try:
            find_top(path)
        except UnitError:
            return False
        return path.is_dir()

    def read(self, path, generated, target):
        from generator.unit.reactos import read_reactos_units
        if generated is None:
            raise UnitError(f"{path}: a ReactOS tree needs the folder of its generated headers "
                            f"(generator.hosttools.headers.ensure_generated)")
        return read_reactos_units(path, generated)


#: Tried in order: an explicit unit.toml wins over a build folder, which wins over the tree it belongs to.
_KINDS: tuple[_Kind, ...] = (_LocalKind(), _CompileCommandsKind(), _ReactosKind())


def load_unit(path: Path, *, generated: Path | None = None, target=None, name: str = "hal") -> BuildUnit:
    """The unit ``name`` described at ``path``: a ``unit.toml`` (or its folder), a configured ReactOS build
    folder (``compile_commands.json``), or a ReactOS checkout (its top or ``hal/halx86``).

    ``generated`` is the generated-headers folder (ReactOS tree) or the build output folder filling
    ``{generated}`` (unit.toml); ``target`` the kernel ABI target (``specs.Target`` or its name) a unit.toml's
    placeholders need.
    """
    path = Path(path)
    if not path.exists():
        raise UnitError(f"{path}: no such file or folder")
    for kind in _KINDS:
        if kind.matches(path):
            units = kind.read(path, generated, target)
            if name not in units:
                raise UnitError(f"{path}: no unit {name!r} in this {kind.label} (it has: {', '.join(units)})")
            return units[name]
    raise UnitError(f"{path}: not a build description (expected a unit.toml, a folder with compile_commands.json, "
                    f"or a ReactOS tree with hal/CMakeLists.txt)")


# ---- opening a unit with everything it needs ---------------------------------------------------------------------

def _reactos_known_diagnostics() -> list[KnownDiagnostic]:
    """The known libclang diagnostics of upstream ReactOS's headers (``reactos_ref/known_diagnostics.toml``)."""
    import tomllib
    path = Path(__file__).resolve().parent.parent.parent / "reactos_ref" / "known_diagnostics.toml"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UnitError(f"{path}: {exc}") from None
    out = []
    for number, item in enumerate(data.get("diagnostic", []), 1):
        try:
            out.append(KnownDiagnostic(item["file"], item["message"], item["why"]))
        except KeyError as exc:
            raise UnitError(f"{path}: [[diagnostic]] #{number} lacks {exc.args[0]!r}") from None
    return out


def open_units(path: Path, target=None, *, build_dir: Path | None = None) -> dict[str, BuildUnit]:
    """Every unit described at ``path``, with what its kind needs made first, for analyze, generate and SCons.

    A ReactOS tree gets its build-time headers (``generator.hosttools.headers.ensure_generated``, cached by
    content outside the tree) and its known libclang diagnostics; a ``unit.toml`` gets its target header rendered
    into ``build_dir/include`` (SCons passes its build folder) or, without one, into a folder cached by content.
    """
    path = Path(path)
    if not path.exists():
        raise UnitError(f"{path}: no such file or folder")
    kind = next((k for k in _KINDS if k.matches(path)), None)
    if kind is None:
        raise UnitError(f"{path}: not a build description (expected a unit.toml, a folder with "
                        f"compile_commands.json, or a ReactOS tree with hal/CMakeLists.txt)")
    generated = None
    if isinstance(kind, _ReactosKind):
        from generator.hosttools import HostToolError
        from generator.hosttools.headers import ensure_generated
        from generator.unit.reactos import find_top
        try:
            generated = ensure_generated(find_top(path))
        except HostToolError as exc:
            raise UnitError(f"{path}: making the build-time headers failed: {exc}") from None
    elif isinstance(kind, _LocalKind):
        from generator import render
        generated = build_dir if build_dir is not None else render.cached_target_include(target)
    units = kind.read(path, generated, target)
    if isinstance(kind, (_ReactosKind, _CompileCommandsKind)):
        known = _reactos_known_diagnostics()
        for unit in units.values():
            unit.known_diagnostics = list(known)
    return units


def open_unit(path: Path, target=None, *, name: str = "hal", build_dir: Path | None = None) -> BuildUnit:
    """The unit ``name`` of ``open_units(path, target, build_dir=...)``; ``UnitError`` names what the
    description has when it lacks ``name``."""
    units = open_units(path, target, build_dir=build_dir)
    if name not in units:
        raise UnitError(f"{path}: no unit {name!r} here (it has: {', '.join(sorted(units))})")
    return units[name]
