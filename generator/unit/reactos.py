"""Build units of a ReactOS tree's HAL DLLs: read from the tree's CMake files, or from a configured build.

``read_reactos_units`` configures the tree the way an amd64 gcc build would (cache presets below, the top-level
include folders and defines of :func:`generator.hosttools.headers.reactos_global_args`, then
``sdk/cmake/config.cmake`` and ``sdk/cmake/gcc.cmake``), evaluates ``hal/CMakeLists.txt`` and what it adds with
:mod:`generator.unit.cmake`, and makes one unit per DLL (MODULE or SHARED library) the HAL folders define for
that architecture: on upstream amd64, ``add_hal(hal ... COMPONENTS generic acpi up apic)`` and
``add_hal(halmp ... COMPONENTS generic acpi smp apic)``. Which files, include folders and defines each DLL gets
follows from evaluating the files, so an i386-only component never reaches an amd64 unit and a branch with
other components (``hal.cmake``, ``msi.c``...) is read the same way.

Per unit: the translation units in order (an object library's files compiled with its own arguments), the
static libraries ``target_link_libraries`` names (each read from the ``sdk/lib`` folder whose CMake files
define it), the export spec of ``spec2def``, the import modules of ``add_importlibs`` (with their ``.spec``),
the entry point of ``set_module_type``.

``read_compile_commands`` reads a configured build's ``compile_commands.json`` for the exact arguments of each
file, keeping the CMake reading for which object libraries and libraries each DLL takes.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from generator.hosttools.headers import reactos_global_args
from generator.unit import BuildUnit, ExportSpec, Library, Source, UnitError, read_data_file
from generator.unit.cmake import CMakeProject, CompileUnit
from generator.unit.cmakelang import commands_in, parse

TRIPLE = "x86_64-w64-mingw32"
#: Where the HAL's build description starts (the top-level CMakeLists adds it).
HAL_DIR = Path("hal")
#: Where libraries a HAL links are defined (searched for ``add_library(<name> ...)``).
LIBRARY_ROOT = Path("sdk/lib")
#: Toolchain files of the tree read before any folder: (path, interpreter mode).
TOOLCHAIN_FILES = ((Path("sdk/cmake/config.cmake"), "normal"), (Path("sdk/cmake/gcc.cmake"), "flags"))
_LANGUAGE = {"C": "c", "ASM": "asm", "RC": "rc"}


def find_top(path: Path) -> Path:
    """The checkout top for ``path`` (the top itself, its ``hal/halx86``, or any folder inside it)."""
    start = Path(path).absolute()
    for candidate in (start, *start.parents):
        if (candidate / HAL_DIR / "CMakeLists.txt").is_file() and (candidate / "sdk" / "cmake").is_dir():
            return Path(os.path.normpath(candidate))
    raise UnitError(f"{path}: not in a ReactOS tree (no {HAL_DIR}/CMakeLists.txt with sdk/cmake beside it, "
                    f"here or above)")


def configured_project(top: Path, generated: Path, *, arch: str = "amd64", build_type: str = "Release",
                       compiler_version: str = "12") -> CMakeProject:
    """A :class:`CMakeProject` for ``top`` configured as an ``arch`` gcc cross build writing to ``generated``.

    The cache holds what ``cmake -DARCH=... -DCMAKE_TOOLCHAIN_FILE=toolchain-gcc.cmake`` establishes (compiler
    ids and version, cross-compiling, build type); ``CMAKE_INCLUDE_CURRENT_DIR`` and ``REACTOS_*_DIR`` are set
    by the top-level CMakeLists, which is not read (its include folders and defines come from
    ``reactos_global_args``). ``Release`` matches that function's ``DBG=0``.
    """
    top = Path(top).absolute()
    generated = Path(generated).absolute()
    cache = {
        "ARCH": arch, "CMAKE_BUILD_TYPE": build_type, "CMAKE_CROSSCOMPILING": "TRUE",
        "CMAKE_C_COMPILER_ID": "GNU", "CMAKE_CXX_COMPILER_ID": "GNU", "CMAKE_ASM_COMPILER_ID": "GNU",
        "CMAKE_C_COMPILER_VERSION": compiler_version, "CMAKE_CXX_COMPILER_VERSION": compiler_version,
        "CMAKE_C_COMPILER": f"{TRIPLE}-gcc", "CMAKE_CXX_COMPILER": f"{TRIPLE}-g++",
        "CMAKE_ASM_COMPILER": f"{TRIPLE}-gcc", "CMAKE_SYSTEM_NAME": "Windows", "WIN32": "1", "MINGW": "1",
    }
    project = CMakeProject(top, generated, cache, config=build_type)
    project.top.state.variables.update({
        "REACTOS_SOURCE_DIR": str(top), "REACTOS_BINARY_DIR": str(generated), "CMAKE_FILES_DIRECTORY": "/CMakeFiles",
        "CMAKE_INCLUDE_CURRENT_DIR": "ON", "PROJECT_NAME": "REACTOS",
    })
    includes, defines = reactos_global_args(top, generated)
    where = "top-level CMakeLists.txt (generator.hosttools.headers.reactos_global_args)"
    project.add_top_definitions(list(defines), where)
    project.add_top_include_dirs(list(includes), where)
    for rel, mode in TOOLCHAIN_FILES:
        if not (top / rel).is_file():
            raise UnitError(f"{top / rel}: missing (a ReactOS tree's compiler settings; is {top} a checkout?)")
        project.include_file(top / rel, mode=mode)
    return project


def read_reactos_units(tree: Path, generated: Path, *, arch: str = "amd64", build_type: str = "Release",
                       compiler_version: str = "12") -> dict[str, BuildUnit]:
    """One unit per HAL DLL the tree builds for ``arch`` (keys: DLL stems, e.g. ``hal``, ``halmp``).

    ``tree`` is a checkout top or a folder inside it (``hal/halx86``); ``generated`` the folder of build-time
    headers (``REACTOS_BINARY_DIR``). Raises :class:`UnitError` naming the file and line of anything it cannot
    read.
    """
    top = find_top(tree)
    generated = Path(os.path.normpath(Path(generated).absolute()))
    project = configured_project(top, generated, arch=arch, build_type=build_type,
                                 compiler_version=compiler_version)
    hal_top = top / HAL_DIR
    project.evaluate_directory(hal_top)
    modules = [name for src, d in project.directories.items() if src == hal_top or hal_top in src.parents
               for name in d.targets
               if project.targets[name].type in ("MODULE", "SHARED") and not project.targets[name].imported]
    if not modules:
        raise UnitError(f"{HAL_DIR}/CMakeLists.txt: no HAL DLL (MODULE or SHARED library) is built for "
                        f"ARCH={arch}")
    prefix = _component_prefix(project, modules)
    return {name: _unit(project, top, generated, name, prefix) for name in modules}


def _component_prefix(project: CMakeProject, modules: list[str]) -> str:
    """The common stem of the object libraries the DLLs take (``lib_hal_``), cut off to name components."""
    names = sorted({tu.target for m in modules for tu in project.translation_units(m)} - set(modules))
    if len(names) < 2:
        return ""
    common = os.path.commonprefix(names)
    cut = max(common.rfind("_"), common.rfind("-"))
    return common[:cut + 1] if cut >= 0 else ""


def _component(target: str, module: str, prefix: str) -> str:
    if target == module or not prefix or not target.startswith(prefix) or target == prefix:
        return target
    return target[len(prefix):]


def _source(tu: CompileUnit, component: str, owner: str) -> Source:
    language = _LANGUAGE.get(tu.language)
    if language is None:
        raise UnitError(f"{owner}: {tu.path}: {tu.language} sources are not supported in a build unit")
    return Source(tu.path, language, component, tu.include_dirs, tu.defines, tu.flags, tu.target,
                  tu.generated_from, tu.generator)


def _unit(project: CMakeProject, top: Path, generated: Path, name: str, prefix: str) -> BuildUnit:
    target = project.target(name)
    owner = f"{target.where}: {name}"
    sources = [_source(tu, _component(tu.target, name, prefix), owner) for tu in project.translation_units(name)]
    libraries, link_flags = _libraries(project, top, name)
    imports, import_spec = _imports(project, top, name)
    module_type = project.facts.module_types.get(name)
    if module_type is None or module_type.entry is None:
        raise UnitError(f"{owner}: no set_module_type({name} ... ENTRYPOINT <name>): the entry point is unknown")
    files = [project.display(f) for f in target.directory.files]
    return BuildUnit(
        name=name, tree=top, hal_root=target.directory.source_dir, sources=sources, libraries=libraries,
        exports=_exports(project, name, owner), imports=imports, import_spec=import_spec,
        entry=module_type.entry, entry_args_bytes=module_type.entry_args or 0, generated_root=generated,
        origin=", ".join(files), link_flags=link_flags + project.link_options(name),
    )


def _exports(project: CMakeProject, name: str, owner: str) -> ExportSpec:
    defs = set(project.module_definition_files(name))
    facts = [f for f in project.facts.spec2def if f.def_file in defs]
    if not facts:
        facts = [f for f in project.facts.spec2def if Path(f.dll).name.split(".", 1)[0] == name]
    specs = sorted({f.spec for f in facts})
    if len(specs) != 1:
        found = ", ".join(str(s) for s in specs) or "none"
        raise UnitError(f"{owner}: expected one spec2def() export spec for it, found {found}")
    fact = facts[0]
    if not specs[0].is_file():
        raise UnitError(f"{fact.where}: spec2def: no file {specs[0]}")
    arch = project.variable("ARCH2")
    if not arch:
        raise UnitError(f"{owner}: ARCH2 (spec2def's architecture) is not set by sdk/cmake/gcc.cmake")
    if fact.version is not None:
        text = "0x" + fact.version                       # spec2def(VERSION v) means 0x<v>
    else:
        text = project.variable("DLL_EXPORT_VERSION") or ""
    try:
        version = int(text, 0)
    except ValueError:
        raise UnitError(f"{fact.where}: export version {text!r} is not a number (DLL_EXPORT_VERSION of "
                        f"sdk/cmake/config.cmake)") from None
    return ExportSpec(spec=specs[0], arch=arch, version=version)


def find_module_spec(top: Path, module: str) -> Path | None:
    """``<module>.spec`` in the tree (the shallowest, e.g. ``ntoskrnl/ntoskrnl.spec``), or None."""
    for depth in range(5):
        hits = sorted(top.glob("/".join(["*"] * depth + [f"{module}.spec"])))
        if hits:
            return hits[0]
    return None


def _imports(project: CMakeProject, top: Path, name: str) -> tuple[list[str], dict[str, Path]]:
    modules: list[str] = []
    specs: dict[str, Path] = {}
    for entry in project.facts.importlibs.get(name, []):
        if entry.value in modules:
            continue
        spec = find_module_spec(top, entry.value)
        if spec is None:
            raise UnitError(f"{entry.where}: add_importlibs({name} {entry.value}): no {entry.value}.spec in "
                            f"the tree (its import library is made from it)")
        modules.append(entry.value)
        specs[entry.value] = spec
    return modules, specs


def _libraries(project: CMakeProject, top: Path, name: str) -> tuple[list[Library], list[str]]:
    """Static libraries a DLL links (and what they link in turn), in link order, and plain link flags."""
    order: list[str] = []
    flags: list[str] = []
    queue = [(item, name) for item in project.link_items(name)]
    while queue:
        item, user = queue.pop(0)
        if item.startswith("-"):
            if item not in flags:
                flags.append(item)
            continue
        if item in order:
            continue
        if item not in project.targets:
            _load_library(project, top, item, user)
        lib = project.target(item)
        if lib.type in ("STATIC", "OBJECT", "INTERFACE"):
            if lib.type != "INTERFACE":
                order.append(lib.name)
            queue += [(i, lib.name) for i in project.link_items(lib.name, interface=True)]
        else:
            raise UnitError(f"{lib.where}: {user} links {item}, a {lib.type} library (expected a static one)")
    libraries = []
    for lib_name in order:
        owner = f"{project.target(lib_name).where}: {lib_name}"
        libraries.append(Library(lib_name, [_source(tu, lib_name, owner)
                                            for tu in project.translation_units(lib_name)]))
    return libraries, flags


def _library_dirs(top: Path, name: str) -> list[Path]:
    """Folders under ``sdk/lib`` whose CMake files call ``add_library(<name> ...)`` (each a CMakeLists folder)."""
    root = top / LIBRARY_ROOT
    files = sorted(set(root.rglob("CMakeLists.txt")) | set(root.rglob("*.cmake")))
    dirs: list[Path] = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if name not in text or "add_library" not in text:
            continue
        calls = [c for c in commands_in(parse(text, path)) if c.name in ("add_library", "_add_library")]
        if not any(c.args and c.args[0].kind != "bracket" and c.args[0].text == name for c in calls):
            continue
        folder = path.parent
        while not (folder / "CMakeLists.txt").is_file() and folder != root:
            folder = folder.parent
        if folder not in dirs:
            dirs.append(folder)
    return dirs


def _load_library(project: CMakeProject, top: Path, name: str, user: str) -> None:
    """Evaluate the folder that defines library ``name`` (searched under ``sdk/lib``)."""
    dirs = _library_dirs(top, name)
    for folder in dirs:
        if folder not in project.directories:
            project.evaluate_directory(folder)
        if name in project.targets:
            return
    where = ", ".join(project.display(d) for d in dirs)
    raise UnitError(f"{user} links {name!r}: " + (f"{where} does not define it in this configuration" if dirs
                                                  else f"no add_library({name} ...) under {LIBRARY_ROOT}"))


# ---- compile_commands.json ------------------------------------------------------------------------------------------

def _cmake_cache(build_dir: Path) -> dict[str, str]:
    """``NAME:TYPE=value`` entries of a build folder's ``CMakeCache.txt`` (empty when there is none)."""
    path = build_dir / "CMakeCache.txt"
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(("#", "//")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        out[key.split(":", 1)[0]] = value
    return out


def source_tree_of_build(build_dir: Path) -> Path:
    """The source tree a configured build folder was made from (``CMAKE_HOME_DIRECTORY`` of its cache)."""
    home = _cmake_cache(Path(build_dir)).get("CMAKE_HOME_DIRECTORY")
    if not home:
        raise UnitError(f"{Path(build_dir) / 'CMakeCache.txt'}: missing or without CMAKE_HOME_DIRECTORY "
                        f"(the source tree is unknown)")
    return Path(home)


def _target_of_object(output: str) -> str | None:
    """``.../CMakeFiles/<target>.dir/...`` -> ``<target>``."""
    parts = Path(output).parts
    for i, part in enumerate(parts[:-1]):
        if part.endswith(".dir") and i > 0 and parts[i - 1] == "CMakeFiles":
            return part[:-4]
    return None


def _expand_response_files(args: list[str], directory: Path, where: str) -> list[str]:
    out: list[str] = []
    for a in args:
        if a.startswith("@") and len(a) > 1:
            path = Path(a[1:]) if Path(a[1:]).is_absolute() else directory / a[1:]
            try:
                out += shlex.split(path.read_text(encoding="utf-8", errors="replace"))
            except OSError as exc:
                raise UnitError(f"{where}: response file {path}: {exc.strerror or exc}") from None
        else:
            out.append(a)
    return out


_SKIP_WITH_VALUE = {"-o", "-MF", "-MT", "-MQ"}
_SKIP = {"-c", "-MD", "-MMD"}
_LANG_OF_SUFFIX = {".c": "c", ".s": "asm", ".S": "asm", ".rc": "rc"}


def _db_source(entry: object, index: int, db_path: Path) -> tuple[str, Source] | None:
    """(target, source) of one compile_commands.json entry; None for files of other languages (C++)."""
    where = f"{db_path}: entry {index}"
    if not isinstance(entry, dict) or not isinstance(entry.get("directory"), str) \
            or not isinstance(entry.get("file"), str):
        raise UnitError(f"{where}: expected an object with 'directory', 'file' and 'command' or 'arguments'")
    directory = Path(entry["directory"])
    file = Path(os.path.normpath(directory / entry["file"]))
    where = f"{where} ({entry['file']})"
    if isinstance(entry.get("arguments"), list) and all(isinstance(a, str) for a in entry["arguments"]):
        args = list(entry["arguments"])
    elif isinstance(entry.get("command"), str):
        try:
            args = shlex.split(entry["command"])
        except ValueError as exc:
            raise UnitError(f"{where}: command does not split: {exc}") from None
    else:
        raise UnitError(f"{where}: needs 'command' (a string) or 'arguments' (a list of strings)")
    args = _expand_response_files(args, directory, where)
    language = _LANG_OF_SUFFIX.get(file.suffix)
    if language is None:
        return None
    output = entry.get("output") if isinstance(entry.get("output"), str) else None
    includes: list[Path] = []
    defines: list[str] = []
    flags: list[str] = []
    i = 1
    while i < len(args):
        a = args[i]
        value = args[i + 1] if i + 1 < len(args) else None
        if a == "-o":
            output = output or value
            i += 2
            continue
        if a in _SKIP_WITH_VALUE:
            i += 2
            continue
        if a in _SKIP or Path(os.path.normpath(directory / a)) == file:
            i += 1
            continue
        for opt in ("-I", "-isystem", "-iquote", "-D"):
            if a == opt or (a.startswith(opt) and opt != "-isystem" and opt != "-iquote"):
                item = a[len(opt):] or value
                if item is None:
                    raise UnitError(f"{where}: {opt} without a value")
                if opt == "-D":
                    defines.append(item)
                else:
                    includes.append(Path(os.path.normpath(directory / item)))
                i += 1 if a != opt else 2
                break
        else:
            if a in ("-x", "-include") and value is not None:
                flags += [a, value]
                i += 2
            else:
                flags.append(a)
                i += 1
    target = _target_of_object(output) if output else None
    if target is None:
        raise UnitError(f"{where}: its object path ({output or 'no -o'}) names no CMakeFiles/<target>.dir")
    return target, Source(file, language, target, tuple(dict.fromkeys(includes)), tuple(defines), tuple(flags),
                          target)


def read_compile_commands(build_dir: Path, tree: Path | None = None, *, arch: str | None = None) \
        -> dict[str, BuildUnit]:
    """Units of a configured ReactOS build folder, with each file's arguments from ``compile_commands.json``.

    Which object libraries and static libraries each DLL takes comes from reading ``tree``'s CMake files
    (``tree`` defaults to the build's ``CMAKE_HOME_DIRECTORY``); the files of each object library and their
    exact arguments come from the database (objects live in ``CMakeFiles/<target>.dir/``). Assembly files
    absent from the database (CMake did not always export them) keep the arguments the CMake reading gives.
    """
    build_dir = Path(os.path.normpath(Path(build_dir).absolute()))
    db_path = build_dir / "compile_commands.json"
    data = read_data_file(db_path, "json")
    if not isinstance(data, list):
        raise UnitError(f"{db_path}: expected a JSON list of compile commands")
    cache = _cmake_cache(build_dir)
    tree = Path(tree) if tree is not None else source_tree_of_build(build_dir)
    units = read_reactos_units(tree, build_dir, arch=arch or cache.get("ARCH") or "amd64",
                               build_type=cache.get("CMAKE_BUILD_TYPE") or "Release")
    by_target: dict[str, list[Source]] = {}
    for index, entry in enumerate(data):
        parsed = _db_source(entry, index, db_path)
        if parsed is not None:
            by_target.setdefault(parsed[0], []).append(parsed[1])

    def replace(sources: list[Source], owner: str) -> list[Source]:
        out: list[Source] = []
        for target in dict.fromkeys(s.target for s in sources):
            mine = [s for s in sources if s.target == target]
            db = by_target.get(target)
            if not db:
                raise UnitError(f"{db_path}: no entries for target {target} ({owner} compiles "
                                f"{len(mine)} files of it; is the build configured for this tree and ARCH?)")
            component = mine[0].component
            out += [Source(s.path, s.language, component, s.include_dirs, s.defines, s.extra_flags, target)
                    for s in db]
            if not any(s.language == "asm" for s in db):
                out += [s for s in mine if s.language == "asm"]
        return out

    result: dict[str, BuildUnit] = {}
    for name, unit in units.items():
        libraries = [Library(lib.name, replace(lib.sources, lib.name)) for lib in unit.libraries]
        result[name] = BuildUnit(
            name=unit.name, tree=unit.tree, hal_root=unit.hal_root, sources=replace(unit.sources, name),
            libraries=libraries, exports=unit.exports, imports=unit.imports, import_spec=unit.import_spec,
            entry=unit.entry, entry_args_bytes=unit.entry_args_bytes, generated_root=build_dir,
            origin=f"{db_path}; {unit.origin}", link_flags=unit.link_flags)
    return result
