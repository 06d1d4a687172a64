"""A build unit described by a small TOML file (``hal_src/unit.toml``): our own HAL trees.

Format (paths relative to the TOML file's folder)::

    [unit]            name = "hal", entry = "<symbol or placeholder>"
    [[sources]]       glob = "**/*.c", language = "c" | "asm"     (each glob sorted; tables in order)
    [compile]         include_dirs = [...], defines = [...]
    [compile.flags]   c = [...], asm = [...]
    [exports]         names = [...], aliases = "exports.toml"     (optional; a TOML file with an [aliases] table)
    [imports]         modules = [...]

Placeholders are filled from the kernel ABI target and the build folder: inside a string ``{generated}``,
``{mingw.ddk}``, ``{target.entry}``; as a whole list element ``{target.defines}``, ``{toolchain.cflags}``,
``{target.exports}``, ``{target.imports}``. A file's component is its first folder below the unit's folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

from generator.unit import BuildUnit, ExportSpec, Source, UnitError, read_data_file

_LIST_PLACEHOLDERS = ("target.defines", "toolchain.cflags", "target.exports", "target.imports")
_TEXT_PLACEHOLDERS = ("generated", "mingw.ddk", "target.entry")
_PLACEHOLDER = re.compile(r"\{([a-z.]+)\}")
_SCHEMA = {
    "unit": {"name": str, "entry": str},
    "compile": {"include_dirs": list, "defines": list, "flags": dict},
    "exports": {"names": list, "aliases": str},
    "imports": {"modules": list},
}


class _Filler:
    """Placeholder values, computed on first use (a unit without target placeholders needs no target)."""

    def __init__(self, path: Path, target, generated: Path | None):
        self.path = path
        self.target_arg = target
        self.generated = generated
        self._target = None

    def target(self, field_name: str):
        if self.target_arg is None:
            raise UnitError(f"{self.path}: {field_name} uses a target placeholder: a target is needed")
        if self._target is None:
            from specs import SpecError, load_target
            try:
                self._target = (load_target(self.target_arg) if isinstance(self.target_arg, str)
                                else self.target_arg)
            except SpecError as exc:
                raise UnitError(f"{self.path}: {exc}") from None
        return self._target

    def text(self, name: str, field_name: str) -> str:
        if name == "generated":
            if self.generated is None:
                raise UnitError(f"{self.path}: {field_name} uses {{generated}}: a generated folder is needed")
            return str(self.generated)
        if name == "mingw.ddk":
            from generator import toolchain
            try:
                return str(toolchain.sysroot_include() / "ddk")
            except toolchain.ToolchainError as exc:
                raise UnitError(f"{self.path}: {field_name}: {exc}") from None
        return str(self.target(field_name).link["entry"])

    def items(self, name: str, field_name: str) -> list[str]:
        if name == "toolchain.cflags":
            from generator import toolchain
            return list(toolchain.CFLAGS)
        target = self.target(field_name)
        if name == "target.defines":
            from generator import toolchain
            return list(toolchain.defines(target))
        if name == "target.exports":
            return list(target.exports)
        modules = sorted({target.module_of(n) for n in target.allowed_imports})
        return [m.rsplit(".", 1)[0] for m in modules]


def _fill_text(value: str, filler: _Filler, field_name: str) -> str:
    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in _TEXT_PLACEHOLDERS:
            hint = " (a list placeholder must be a whole list element)" if name in _LIST_PLACEHOLDERS else ""
            raise UnitError(f"{filler.path}: {field_name}: unknown placeholder {{{name}}}{hint}")
        return filler.text(name, field_name)
    return _PLACEHOLDER.sub(one, value)


def _fill_list(values: list, filler: _Filler, field_name: str) -> list[str]:
    out: list[str] = []
    for i, value in enumerate(values):
        where = f"{field_name}[{i}]"
        if not isinstance(value, str):
            raise UnitError(f"{filler.path}: {where}: expected a string, got {type(value).__name__}")
        whole = _PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in _LIST_PLACEHOLDERS:
            out += filler.items(whole.group(1), where)
        else:
            out.append(_fill_text(value, filler, where))
    return out


def _table(data: dict, key: str, path: Path, required: bool) -> dict:
    table = data.get(key)
    if table is None:
        if required:
            raise UnitError(f"{path}: [{key}] is missing")
        return {}
    if not isinstance(table, dict):
        raise UnitError(f"{path}: [{key}] must be a table")
    for name, value in table.items():
        kind = _SCHEMA[key].get(name)
        if kind is None:
            raise UnitError(f"{path}: [{key}].{name}: unknown key (expected one of {', '.join(_SCHEMA[key])})")
        if not isinstance(value, kind):
            raise UnitError(f"{path}: [{key}].{name}: expected a {kind.__name__}, got {type(value).__name__}")
    return table


def _aliases(path: Path) -> dict[str, str]:
    """The ``[aliases]`` table of an exports file; names no target exports are an error (as SConstruct says)."""
    data = read_data_file(path, "toml")
    aliases = data.get("aliases", {})
    if not isinstance(aliases, dict) or not all(isinstance(v, str) for v in aliases.values()):
        raise UnitError(f"{path}: [aliases] must map export names to function names (strings)")
    from specs import load_target, target_names
    every_export = set().union(*(load_target(t).exports for t in target_names()))
    unknown = sorted(set(aliases) - every_export)
    if unknown:
        raise UnitError(f"{path}: [aliases] for names no target exports: {', '.join(unknown)}")
    return dict(aliases)


def _sources(data: dict, root: Path, path: Path, includes: list[Path], defines: list[str],
             flags_of: Callable[[str], list[str]]) -> list[Source]:
    tables = data.get("sources")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise UnitError(f"{path}: [[sources]] is missing (at least one table with glob and language)")
    out: list[Source] = []
    seen: set[Path] = set()
    for i, table in enumerate(tables):
        where = f"[[sources]][{i}]"
        unknown = sorted(set(table) - {"glob", "language"})
        if unknown:
            raise UnitError(f"{path}: {where}.{unknown[0]}: unknown key (expected glob, language)")
        glob, language = table.get("glob"), table.get("language")
        if not isinstance(glob, str) or not glob:
            raise UnitError(f"{path}: {where}.glob: expected a non-empty string")
        if language not in ("c", "asm"):
            raise UnitError(f"{path}: {where}.language: expected \"c\" or \"asm\", got {language!r}")
        matches = sorted(p for p in root.glob(glob) if p.is_file())
        if not matches:
            raise UnitError(f"{path}: {where}.glob: {glob!r} matches no file in {root}")
        for file in matches:
            if file in seen:
                continue
            seen.add(file)
            rel = file.relative_to(root)
            component = rel.parts[0] if len(rel.parts) > 1 else "."
            out.append(Source(file, language, component, tuple(includes), tuple(defines),
                              tuple(flags_of(language)), component))
    return out


def read_local_unit(path: Path, target=None, *, generated: Path | None = None) -> BuildUnit:
    """Read a ``unit.toml`` (or the folder holding one) for ``target`` (a ``specs.Target`` or its name).

    ``generated`` fills ``{generated}`` (where the build renders the unit's generated headers). Errors name the
    file and the field.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "unit.toml"
    data = read_data_file(path, "toml")
    root = path.parent.absolute()
    unknown = sorted(set(data) - set(_SCHEMA) - {"sources"})
    if unknown:
        raise UnitError(f"{path}: [{unknown[0]}]: unknown table (expected unit, sources, compile, exports, "
                        f"imports)")
    filler = _Filler(path, target, Path(generated).absolute() if generated is not None else None)
    unit = _table(data, "unit", path, required=True)
    if "name" not in unit:
        raise UnitError(f"{path}: [unit].name is missing")
    compile_table = _table(data, "compile", path, required=True)
    includes = [root / p for p in _fill_list(compile_table.get("include_dirs", []), filler,
                                             "[compile].include_dirs")]
    defines = _fill_list(compile_table.get("defines", []), filler, "[compile].defines")
    flag_table = compile_table.get("flags", {})
    for lang, value in flag_table.items():
        if lang not in ("c", "asm") or not isinstance(value, list):
            raise UnitError(f"{path}: [compile.flags].{lang}: expected c or asm with a list of flags")
    flags = {lang: _fill_list(flag_table.get(lang, []), filler, f"[compile.flags].{lang}") for lang in ("c", "asm")}
    sources = _sources(data, root, path, includes, defines, lambda lang: flags[lang])

    exports_table = _table(data, "exports", path, required=False)
    names = _fill_list(exports_table.get("names", []), filler, "[exports].names")
    aliases = (_aliases(root / exports_table["aliases"])
               if "aliases" in exports_table else {})
    imports = _fill_list(_table(data, "imports", path, required=False).get("modules", []), filler,
                         "[imports].modules")
    entry = _fill_text(unit.get("entry", "HalInitSystem"), filler, "[unit].entry")
    return BuildUnit(name=unit["name"], tree=root, hal_root=root, sources=sources, libraries=[],
                     exports=ExportSpec(names=names, aliases=aliases), imports=imports, import_spec={},
                     entry=entry, generated_root=filler.generated, origin=str(path))
