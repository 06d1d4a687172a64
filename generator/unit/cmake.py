"""A small CMake interpreter: enough of CMake to read how a ReactOS tree builds its HAL and the libraries it links.

It runs a tree's ``CMakeLists.txt`` and ``*.cmake`` files the way ``cmake`` would for one configuration (the
caller presets the cache: ``ARCH``, compiler id, build type...), and answers what a configured build knows: the
targets, their sources, and each source's complete compile arguments (include folders, defines, flags).

CMake semantics kept because the answers depend on them:

- directories: ``add_subdirectory`` gives the child a copy of the caller's variables and of the directory
  properties; ``include()`` runs a file in the current directory and scope (relative paths are relative to
  ``CMAKE_CURRENT_SOURCE_DIR``, like the sources it lists);
- ``include_directories`` reaches every target of the directory, those created before included;
  ``add_definitions``/``remove_definitions`` are directory-wide, whenever the targets were created (read at
  generate time); ``add_compile_options`` reaches targets created afterwards; defines reach the compiler sorted
  and unique (the target's, then the file's own, as CMake's generators emit them), include folders in order
  without repeats;
- functions get a copy of the caller's scope (``PARENT_SCOPE`` writes the caller's); macros replace
  ``${param}``, ``${ARGN}``, ``${ARGV}``, ``${ARGC}``, ``${ARGVn}`` in their body's text and run in the caller's
  scope; ``cmake_parse_arguments`` as documented;
- ``$<TARGET_OBJECTS:lib>`` in a target's sources stands for that object library's sources, each compiled with
  the object library's own arguments;
- the compile rule ``CMAKE_<LANG>_COMPILE_OBJECT`` contributes its literal ``-I``/``-D``/flags (ReactOS's gcc rule
  for assembly adds ``-x assembler-with-cpp``, ``sdk/include/asm`` and ``-D__ASM__``);
- ``CMAKE_INCLUDE_CURRENT_DIR`` puts a target's binary and source folders first.

ReactOS macros whose effect is a fact rather than compile arguments are recorded, not run: ``spec2def``,
``add_importlibs``, ``set_module_type``; ``add_asm_files`` sets its variable as ``sdk/cmake/gcc.cmake``'s macro
does (``.asm`` files become ``<binary dir>/<file>.s`` made by the ``asmpp`` host tool, ``.inc`` files
``<file>.h``). Commands that do not affect what is compiled are ignored by name (:data:`IGNORED`); any other
unknown command is an error naming the file and line. "flags" mode (for ``sdk/cmake/gcc.cmake``) evaluates a
toolchain file for its variables, compile options and definitions only: function and macro definitions and
the commands of :data:`FLAGS_MODE_SKIPPED` (imported toolchain libraries, host processes) are not run.
"""

from __future__ import annotations

import ast
import operator
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from generator.unit import UnitError
from generator.unit.cmakeexpr import evaluate_condition, evaluate_genex, target_objects_name, truthy
from generator.unit.cmakelang import (Arg, Command, DefBlock, IfBlock, LoopBlock, Node, expand, parse,
                                      split_list, substitute_macro)

#: Commands that do not change what is compiled or linked (dependencies, packaging, precompiled headers,
#: custom build steps, policies): ignored wherever they appear.
IGNORED = frozenset({
    "add_dependencies", "add_cd_file", "add_pch", "add_custom_command", "add_custom_target",
    "cmake_minimum_required", "cmake_policy", "enable_language", "define_property", "mark_as_advanced",
})
#: Not run while reading a toolchain file in "flags" mode: they set up imported toolchain libraries from a
#: compiler's answers (execute_process) or link rules, which a reader does not need.
FLAGS_MODE_SKIPPED = frozenset({
    "execute_process", "add_library", "_add_library", "target_link_libraries", "target_compile_definitions",
    "target_compile_options", "target_link_options", "set_target_properties", "get_target_property", "string",
    "file", "set_property", "add_custom_command",
})
#: CMake modules whose commands are built in here (include() of them is a no-op).
BUILTIN_MODULES = frozenset({"CMakeDependentOption", "CMakeParseArguments"})

_LIBRARY_TYPES = ("STATIC", "SHARED", "MODULE", "OBJECT", "INTERFACE", "UNKNOWN")
_DEFINE_FLAG = re.compile(r"^[-/]D([A-Za-z_][A-Za-z0-9_]*(?:=.*)?)$", re.S)
_LANGUAGES = {".c": "C", ".s": "ASM", ".S": "ASM", ".asm": "ASM", ".rc": "RC",
              ".cpp": "CXX", ".cc": "CXX", ".cxx": "CXX", ".c++": "CXX"}
_NOT_COMPILED = {".h", ".hh", ".hpp", ".hxx", ".inc", ".inl", ".def", ".idl", ".mc", ".spec", ".txt"}
_EXTERNAL_OBJECTS = {".o", ".obj", ".a", ".lib"}


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Return(Exception):
    pass


@dataclass(frozen=True)
class Entry:
    """A value recorded by a command, with where it was written and the folder relative paths are relative to."""

    value: str
    where: str
    base: Path


@dataclass
class DirState:
    """What a directory passes to a subdirectory: its properties and (a copy of) its variables."""

    include_dirs: list[Entry] = field(default_factory=list)
    definitions: list[Entry] = field(default_factory=list)      # COMPILE_DEFINITIONS (NAME or NAME=VALUE)
    define_flags: list[Entry] = field(default_factory=list)     # add_definitions() flags that are not -D
    compile_options: list[Entry] = field(default_factory=list)
    link_options: list[Entry] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)

    def copy(self, variables: dict[str, str]) -> "DirState":
        """A snapshot with the given variables (copied)."""
        return DirState(list(self.include_dirs), list(self.definitions), list(self.define_flags),
                        list(self.compile_options), list(self.link_options), dict(variables))


@dataclass
class Directory:
    """One evaluated source folder (a ``CMakeLists.txt``)."""

    source_dir: Path
    binary_dir: Path
    state: DirState
    parent_vars: dict[str, str] | None
    path_mode: bool = False
    targets: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)         # list files read for it, in order


@dataclass
class Target:
    """A target and the properties that decide how its sources are compiled and what it links."""

    name: str
    type: str                         # STATIC SHARED MODULE OBJECT INTERFACE EXECUTABLE UNKNOWN
    directory: Directory
    where: str
    imported: bool = False
    alias_of: str | None = None
    sources: list[Entry] = field(default_factory=list)
    include_dirs: list[Entry] = field(default_factory=list)
    compile_definitions: list[Entry] = field(default_factory=list)
    compile_options: list[Entry] = field(default_factory=list)
    link_libraries: list[Entry] = field(default_factory=list)
    link_options: list[Entry] = field(default_factory=list)
    interface: dict[str, list[Entry]] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CompileUnit:
    """One source of a target with its complete compile arguments."""

    path: Path
    language: str                     # "C", "ASM", "RC" or "CXX"
    target: str                       # the target whose settings compile it (an object library for TARGET_OBJECTS)
    include_dirs: tuple[Path, ...]
    defines: tuple[str, ...]
    flags: tuple[str, ...]
    generated_from: Path | None = None
    generator: str = ""


@dataclass(frozen=True)
class Spec2Def:
    """``spec2def(dll spec ...)``: the export spec a module's ``.def`` (``def_file``) is made from."""

    dll: str
    spec: Path
    version: str | None
    add_importlib: bool
    def_file: Path
    where: str


@dataclass(frozen=True)
class ModuleType:
    """``set_module_type(module type ...)``."""

    type: str
    entry: str | None
    entry_args: int | None
    image_base: str | None
    where: str


@dataclass
class Facts:
    """What ReactOS's own macros state about modules (recorded, not run)."""

    spec2def: list[Spec2Def] = field(default_factory=list)
    importlibs: dict[str, list[Entry]] = field(default_factory=dict)
    module_types: dict[str, ModuleType] = field(default_factory=dict)
    asm_conversions: dict[Path, tuple[Path, str]] = field(default_factory=dict)   # output -> (input, tool)


@dataclass
class _Definition:
    kind: str                         # "function" or "macro"
    name: str
    params: list[str]
    body: list[Node]
    where: str


@dataclass
class _Frame:
    vars: dict[str, str]
    parent_vars: dict[str, str] | None


def _norm(path: Path | str) -> Path:
    return Path(os.path.normpath(str(path)))


def _math(expression: str, where: str) -> int:
    """``math(EXPR)``: integer arithmetic with C operators."""
    ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.floordiv,
           ast.Mod: operator.mod, ast.LShift: operator.lshift, ast.RShift: operator.rshift,
           ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor}
    unary = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert}

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in unary:
            return unary[type(node.op)](ev(node.operand))
        raise ValueError
    try:
        return ev(ast.parse(expression.strip(), mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError):
        raise UnitError(f"{where}: math(EXPR): cannot evaluate {expression!r}") from None


class _GenexContext:
    """Generator-expression context for one target and language."""

    def __init__(self, project: "CMakeProject", target: Target, language: str):
        self.project = project
        self.target = target
        self.language = language
        self.config = project.config
        self.compiler_id = project.variable("CMAKE_C_COMPILER_ID") or ""

    def target_property(self, target: str | None, name: str) -> str:
        return self.project.target_property(self.project.target(target) if target else self.target, name)

    def is_target(self, name: str) -> bool:
        return name in self.project.targets


class CMakeProject:
    """One configured source tree: variables, directories, targets and the facts ReactOS macros record.

    ``source_root``/``binary_root`` are the top source and build folders; ``cache`` presets cache variables as
    ``cmake -D`` would; ``config`` is the build configuration (``$<CONFIG>``).
    """

    def __init__(self, source_root: Path, binary_root: Path, cache: dict[str, str] | None = None, *,
                 config: str = "Release"):
        self.source_root = _norm(Path(source_root).absolute())
        self.binary_root = _norm(Path(binary_root).absolute())
        self.config = config
        self.cache: dict[str, str] = dict(cache or {})
        self.targets: dict[str, Target] = {}
        self.facts = Facts()
        self.messages: list[str] = []
        self.source_properties: dict[Path, dict[str, str]] = {}
        self.global_properties: dict[str, str] = {}
        self._commands: dict[str, _Definition] = {}
        self._parsed: dict[Path, list[Node]] = {}
        self.directories: dict[Path, Directory] = {}
        self._deferred: dict[Path, tuple[DirState, dict[str, str]]] = {}
        top_vars = {
            "CMAKE_SOURCE_DIR": str(self.source_root), "CMAKE_BINARY_DIR": str(self.binary_root),
            "CMAKE_CURRENT_SOURCE_DIR": str(self.source_root), "CMAKE_CURRENT_BINARY_DIR": str(self.binary_root),
            "PROJECT_SOURCE_DIR": str(self.source_root), "PROJECT_BINARY_DIR": str(self.binary_root),
            "CMAKE_CURRENT_LIST_DIR": str(self.source_root),
        }
        self.top = Directory(self.source_root, self.binary_root, DirState(variables=top_vars), None)
        self._frames: list[_Frame] = [_Frame(top_vars, None)]
        self._dirs: list[Directory] = [self.top]
        self._stack: list[str] = []
        self._mode = "normal"

    # ---- public -------------------------------------------------------------------------------------------------

    def variable(self, name: str) -> str | None:
        """A variable's value in the current scope (normal binding, then cache), or None when undefined."""
        value = self._frames[-1].vars.get(name)
        return value if value is not None else self.cache.get(name)

    def add_top_include_dirs(self, dirs: list[Path], where: str) -> None:
        """Include folders every target gets from the top level (``include_directories`` there)."""
        self.top.state.include_dirs += [Entry(str(d), where, self.source_root) for d in dirs]

    def add_top_definitions(self, defines: list[str], where: str) -> None:
        """Defines every target gets from the top level (``add_definitions(-D...)`` there)."""
        self.top.state.definitions += [Entry(d, where, self.source_root) for d in defines]

    def include_file(self, path: Path, *, mode: str = "normal") -> None:
        """Run a list file in the top directory (``mode="flags"``: a toolchain file, see the module doc)."""
        if mode not in ("normal", "flags"):
            raise ValueError(mode)
        previous, self._mode = self._mode, mode
        try:
            self._include(_norm(Path(path).absolute()))
        finally:
            self._mode = previous

    def run_source(self, text: str, name: str = "<snippet>") -> None:
        """Run CMake source text in the top directory (for tests and small descriptions)."""
        nodes = parse(text, Path(name))
        try:
            self._run(nodes)
        except _Return:
            pass

    def evaluate_directory(self, source_dir: Path) -> Directory:
        """Evaluate ``source_dir``'s ``CMakeLists.txt`` (and what it adds) as its parents would add it.

        The folders between the top and ``source_dir`` that have a ``CMakeLists.txt`` are run first in path
        mode (their other ``add_subdirectory`` calls are remembered, not run), so ``source_dir`` starts from the
        variables and properties its parent hands it. The top-level ``CMakeLists.txt`` itself is not run: its
        part is the state set up through :meth:`add_top_include_dirs`, :meth:`add_top_definitions` and
        :meth:`include_file`.
        """
        src = _norm(Path(source_dir).absolute())
        done = self.directories.get(src)
        if done is not None and not done.path_mode:
            return done
        try:
            parts = src.relative_to(self.source_root).parts
        except ValueError:
            raise UnitError(f"{src}: outside the source tree {self.source_root}") from None
        if not parts:
            raise UnitError(f"{src}: the top-level CMakeLists.txt is not read (its settings are preset)")
        state, parent_vars = self.top.state, self.top.state.variables
        lists_above = False           # a folder above has a CMakeLists.txt: this one is reached through it
        for i in range(1, len(parts)):
            ancestor = self.source_root.joinpath(*parts[:i])
            reached = ancestor in self._deferred
            if reached:
                state, parent_vars = self._deferred[ancestor]
            has_lists = (ancestor / "CMakeLists.txt").is_file()
            if has_lists and (reached or not lists_above):
                if ancestor not in self.directories:
                    self._run_directory(ancestor, state, parent_vars, path_mode=True)
                nxt = self.source_root.joinpath(*parts[:i + 1])
                if nxt not in self._deferred and nxt not in self.directories:
                    raise UnitError(f"{self.display(ancestor / 'CMakeLists.txt')}: does not add "
                                    f"{nxt.name}/ in this configuration (ARCH={self.variable('ARCH')}): "
                                    f"{self.display(src)} is not built")
            lists_above |= has_lists
        if src in self._deferred:
            state, parent_vars = self._deferred[src]
        if not (src / "CMakeLists.txt").is_file():
            raise UnitError(f"{self.display(src)}: no CMakeLists.txt")
        return self._run_directory(src, state, parent_vars, path_mode=False)

    def target(self, name: str) -> Target:
        """The target ``name`` (an alias resolves to its target)."""
        t = self.targets.get(name)
        if t is None:
            raise UnitError(f"no target {name!r} was defined")
        return self.targets[t.alias_of] if t.alias_of else t

    def target_property(self, t: Target, name: str) -> str:
        """A target property as ``$<TARGET_PROPERTY>`` and ``get_target_property`` read it."""
        lists = {"SOURCES": t.sources, "INCLUDE_DIRECTORIES": t.include_dirs,
                 "COMPILE_DEFINITIONS": t.compile_definitions, "COMPILE_OPTIONS": t.compile_options,
                 "LINK_LIBRARIES": t.link_libraries, "LINK_OPTIONS": t.link_options}
        if name in lists:
            return ";".join(e.value for e in lists[name])
        if name in t.interface:
            return ";".join(e.value for e in t.interface[name])
        if name == "TYPE":
            return {"STATIC": "STATIC_LIBRARY", "SHARED": "SHARED_LIBRARY", "MODULE": "MODULE_LIBRARY",
                    "OBJECT": "OBJECT_LIBRARY", "INTERFACE": "INTERFACE_LIBRARY"}.get(t.type, t.type)
        if name == "NAME":
            return t.name
        return t.properties.get(name, "")

    def link_items(self, name: str, *, interface: bool = False) -> list[str]:
        """What a target links (``interface``: what it passes on to those linking it), genex evaluated."""
        t = self.target(name)
        entries = t.interface.get("INTERFACE_LINK_LIBRARIES", []) if interface else t.link_libraries
        ctx = _GenexContext(self, t, "C")
        out: list[str] = []
        for e in entries:
            out += split_list(evaluate_genex(e.value, ctx, e.where))
        return out

    def link_options(self, name: str) -> list[str]:
        """A target's link options (``target_link_options``), genex evaluated."""
        t = self.target(name)
        ctx = _GenexContext(self, t, "C")
        return [item for e in t.link_options for item in split_list(evaluate_genex(e.value, ctx, e.where))]

    def module_definition_files(self, name: str) -> list[Path]:
        """The ``.def`` files among a target's sources."""
        t = self.target(name)
        return [p for p in self._source_paths(t) if p.suffix.lower() == ".def"]

    def translation_units(self, name: str) -> list[CompileUnit]:
        """Every compiled source of a target, in order, with its compile arguments.

        ``$<TARGET_OBJECTS:lib>`` entries expand to ``lib``'s units (compiled with ``lib``'s settings). Headers,
        ``.def`` and other non-compiled files are left out; an external object or archive is an error.
        """
        t = self.target(name)
        out: list[CompileUnit] = []
        for entry in t.sources:
            objects = target_objects_name(entry.value)
            if objects is not None:
                lib = self.targets.get(objects)
                if lib is None:
                    raise UnitError(f"{entry.where}: $<TARGET_OBJECTS:{objects}>: no such target")
                if self.target(objects).type != "OBJECT":
                    raise UnitError(f"{entry.where}: $<TARGET_OBJECTS:{objects}>: {objects} is not an OBJECT "
                                    f"library")
                out += self.translation_units(objects)
                continue
            for path in self._entry_paths(t, entry):
                language = self._language(path, t, entry)
                if language is not None:
                    out.append(self._compile_unit(t, path, language))
        return out

    # ---- compile arguments --------------------------------------------------------------------------------------

    def _entry_paths(self, t: Target, entry: Entry) -> list[Path]:
        value = evaluate_genex(entry.value, _GenexContext(self, t, "C"), entry.where)
        return [self._resolve(item, entry.base) for item in split_list(value)]

    def _source_paths(self, t: Target) -> list[Path]:
        out: list[Path] = []
        for entry in t.sources:
            if target_objects_name(entry.value) is None:
                out += self._entry_paths(t, entry)
        return out

    @staticmethod
    def _resolve(item: str, base: Path) -> Path:
        path = Path(item)
        return _norm(path if path.is_absolute() else base / path)

    def _language(self, path: Path, t: Target, entry: Entry) -> str | None:
        suffix = path.suffix if path.suffix in _LANGUAGES else path.suffix.lower()
        if suffix in _LANGUAGES:
            return _LANGUAGES[suffix]
        if suffix in _EXTERNAL_OBJECTS:
            raise UnitError(f"{entry.where}: target {t.name}: external object {self.display(path)} is not "
                            f"supported (only sources)")
        return None                      # headers, .def, data files: not compiled

    def _rule(self, d: Directory, language: str) -> tuple[list[str], list[str], list[str], list[str]]:
        """Literal arguments of ``CMAKE_<LANG>_COMPILE_OBJECT``: includes and defines before/after the
        placeholders, and flags."""
        rule = d.state.variables.get(f"CMAKE_{language}_COMPILE_OBJECT") or self.cache.get(
            f"CMAKE_{language}_COMPILE_OBJECT") or ""
        try:
            tokens = shlex.split(rule)
        except ValueError:
            tokens = rule.split()
        pre_inc, post_inc, defines, flags = [], [], [], []
        seen_includes = False
        skip = False
        for i, tok in enumerate(tokens):
            if skip:
                skip = False
                continue
            if tok.startswith("<") and tok.endswith(">"):
                seen_includes |= tok == "<INCLUDES>"
            elif tok in ("-o", "-c"):
                skip = tok == "-o"
            elif tok.startswith("-I") and len(tok) > 2:
                (post_inc if seen_includes else pre_inc).append(tok[2:])
            elif tok.startswith("-D") and len(tok) > 2:
                defines.append(tok[2:])
            elif tok == "-x" and i + 1 < len(tokens):
                flags += [tok, tokens[i + 1]]
                skip = True
            else:
                flags.append(tok)
        return pre_inc, post_inc, defines, flags

    def _usage_targets(self, t: Target) -> list[Target]:
        """Targets whose INTERFACE_* usage requirements ``t`` gets (its link closure), in order."""
        seen: list[str] = []
        todo = [i for i in self.link_items(t.name) if i in self.targets]
        while todo:
            name = todo.pop(0)
            real = self.target(name).name
            if real in seen or real == t.name:
                continue
            seen.append(real)
            todo += [i for i in self.link_items(real, interface=True) if i in self.targets]
        return [self.targets[n] for n in seen]

    def _compile_unit(self, t: Target, path: Path, language: str) -> CompileUnit:
        d = t.directory
        ctx = _GenexContext(self, t, language)
        pre_inc, post_inc, rule_defines, rule_flags = self._rule(d, language)
        usage = self._usage_targets(t)
        props = self.source_properties.get(path, {})

        includes: list[Path] = [_norm(p) for p in pre_inc]
        if truthy(d.state.variables.get("CMAKE_INCLUDE_CURRENT_DIR")):
            includes += [d.binary_dir, d.source_dir]
        entries = list(t.include_dirs)
        for u in usage:
            entries += u.interface.get("INTERFACE_INCLUDE_DIRECTORIES", [])
        for e in entries:
            includes += [self._resolve(i, e.base) for i in split_list(evaluate_genex(e.value, ctx, e.where))]
        includes += [_norm(p) for p in post_inc]
        unique_includes = tuple(dict.fromkeys(includes))

        def_entries = list(d.state.definitions) + list(t.compile_definitions)
        for u in usage:
            def_entries += u.interface.get("INTERFACE_COMPILE_DEFINITIONS", [])
        # As CMake's generators emit them: the target's defines sorted and unique, then the file's own.
        defines: set[str] = set()
        for e in def_entries:
            for item in split_list(evaluate_genex(e.value, ctx, e.where)):
                defines.add(item[2:] if item.startswith("-D") else item)
        own: set[str] = set()
        for key in ("COMPILE_DEFINITIONS", f"COMPILE_DEFINITIONS_{self.config.upper()}"):
            for item in split_list(evaluate_genex(props.get(key, ""), ctx, f"source {path}")):
                own.add(item[2:] if item.startswith("-D") else item)
        all_defines = tuple(sorted(defines - {""})) + tuple(sorted(own - defines - {""})) + tuple(rule_defines)

        flags: list[str] = list(rule_flags)
        opt_entries = list(t.compile_options)
        for u in usage:
            opt_entries += u.interface.get("INTERFACE_COMPILE_OPTIONS", [])
        for e in opt_entries:
            flags += split_list(evaluate_genex(e.value, ctx, e.where))
        flags += [e.value for e in d.state.define_flags]
        if props.get("COMPILE_FLAGS"):
            flags += shlex.split(evaluate_genex(props["COMPILE_FLAGS"], ctx, f"source {path}"))
        flags += split_list(evaluate_genex(props.get("COMPILE_OPTIONS", ""), ctx, f"source {path}"))

        origin = self.facts.asm_conversions.get(path)
        return CompileUnit(path, language, t.name, unique_includes, all_defines, tuple(flags),
                           origin[0] if origin else None, origin[1] if origin else "")

    # ---- evaluation ---------------------------------------------------------------------------------------------

    def display(self, path: Path) -> str:
        """``path`` relative to the source root (POSIX) when inside it, for messages; else as it is."""
        try:
            return Path(path).relative_to(self.source_root).as_posix()
        except ValueError:
            return str(path)

    def _parse(self, path: Path) -> list[Node]:
        nodes = self._parsed.get(path)
        if nodes is None:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise UnitError(f"{self.display(path)}: cannot read: {exc.strerror or exc}") from None
            nodes = parse(text, Path(self.display(path)))
            self._parsed[path] = nodes
        return nodes

    @property
    def _dir(self) -> Directory:
        return self._dirs[-1]

    @property
    def _vars(self) -> dict[str, str]:
        return self._frames[-1].vars

    def _include(self, path: Path) -> None:
        nodes = self._parse(path)
        self._dir.files.append(path)
        saved = {k: self._vars.get(k) for k in ("CMAKE_CURRENT_LIST_FILE", "CMAKE_CURRENT_LIST_DIR")}
        self._vars["CMAKE_CURRENT_LIST_FILE"] = str(path)
        self._vars["CMAKE_CURRENT_LIST_DIR"] = str(path.parent)
        try:
            self._run(nodes)
        except _Return:
            pass
        finally:
            for k, v in saved.items():
                if v is None:
                    self._vars.pop(k, None)
                else:
                    self._vars[k] = v

    def _run_directory(self, src: Path, state: DirState, parent_vars: dict[str, str] | None, *,
                       path_mode: bool) -> Directory:
        if src in self.directories:
            raise UnitError(f"{self.display(src)}: added twice (add_subdirectory of a folder already read)")
        try:
            rel = src.relative_to(self.source_root)
        except ValueError:
            raise UnitError(f"{src}: outside the source tree {self.source_root}") from None
        binary = _norm(self.binary_root / rel)
        d = Directory(src, binary, state.copy(state.variables), parent_vars, path_mode)
        d.state.variables.update({
            "CMAKE_CURRENT_SOURCE_DIR": str(src), "CMAKE_CURRENT_BINARY_DIR": str(binary),
        })
        self.directories[src] = d
        self._dirs.append(d)
        self._frames.append(_Frame(d.state.variables, parent_vars))
        try:
            self._include(src / "CMakeLists.txt")
        finally:
            self._frames.pop()
            self._dirs.pop()
        return d

    def _run(self, nodes: list[Node]) -> None:
        for node in nodes:
            if isinstance(node, Command):
                self._command(node)
            elif isinstance(node, IfBlock):
                for head, body in node.branches:
                    if self._condition(head):
                        self._run(body)
                        break
                else:
                    if node.orelse is not None:
                        self._run(node.orelse)
            elif isinstance(node, LoopBlock):
                if node.head.name == "foreach":
                    self._foreach(node)
                else:
                    self._while(node)
            elif isinstance(node, DefBlock):
                self._define(node)

    def _lookup_cache(self, name: str) -> str | None:
        return self.cache.get(name)

    def _expand(self, arg: Arg, where: str) -> list[str]:
        return expand(arg, self.variable, self._lookup_cache, where)

    def _args(self, cmd: Command) -> list[str]:
        out: list[str] = []
        for arg in cmd.args:
            out += self._expand(arg, f"{cmd.file}:{arg.line}")
        return out

    # ConditionContext
    def definition(self, name: str) -> str | None:
        """Variable lookup for conditions."""
        return self.variable(name)

    def cache_definition(self, name: str) -> str | None:
        """Cache lookup for ``DEFINED CACHE{x}``."""
        return self.cache.get(name)

    def is_command(self, name: str) -> bool:
        """Whether ``name`` is a command here (built in, ReactOS fact, defined or ignored)."""
        lname = name.lower()
        return (lname in self._commands or hasattr(self, "_cmd_" + lname.lstrip("_")) or lname in IGNORED)

    def is_target(self, name: str) -> bool:
        """Whether a target ``name`` exists."""
        return name in self.targets

    def set_matches(self, groups: list[str]) -> None:
        """``CMAKE_MATCH_<n>`` after a successful ``MATCHES``."""
        for k in [k for k in self._vars if k.startswith("CMAKE_MATCH_")]:
            del self._vars[k]
        for i, g in enumerate(groups):
            self._vars[f"CMAKE_MATCH_{i}"] = g
        self._vars["CMAKE_MATCH_COUNT"] = str(len(groups) - 1)

    def _condition_args(self, cmd: Command) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        for arg in cmd.args:
            quoted = arg.kind != "unquoted"
            out += [(v, quoted) for v in self._expand(arg, f"{cmd.file}:{arg.line}")]
        return out

    def _condition(self, cmd: Command) -> bool:
        return evaluate_condition(self._condition_args(cmd), self, cmd.where())

    def _foreach(self, block: LoopBlock) -> None:
        head = block.head
        args = self._args(head)
        if not args:
            raise UnitError(f"{head.where()}: foreach() needs a loop variable")
        var, rest = args[0], args[1:]
        if rest[:1] == ["RANGE"]:
            numbers = [int(x, 0) for x in rest[1:]] if all(re.fullmatch(r"-?\d+", x) for x in rest[1:]) else None
            if not numbers or len(numbers) > 3:
                raise UnitError(f"{head.where()}: foreach(RANGE) expects 1 to 3 integers")
            start, stop, step = (0, numbers[0], 1) if len(numbers) == 1 else (numbers + [1])[:3]
            items = [str(i) for i in range(start, stop + 1, step)] if step > 0 else []
        elif rest[:1] == ["IN"]:
            items, mode = [], None
            for word in rest[1:]:
                if word in ("LISTS", "ITEMS"):
                    mode = word
                elif word == "ZIP_LISTS":
                    raise UnitError(f"{head.where()}: foreach(IN ZIP_LISTS) is not supported")
                elif mode == "LISTS":
                    items += split_list(self.variable(word) or "")
                elif mode == "ITEMS":
                    items.append(word)
                else:
                    raise UnitError(f"{head.where()}: foreach(IN ...) expects LISTS or ITEMS")
        else:
            items = rest
        scope = self._vars
        saved = scope.get(var)
        try:
            for item in items:
                scope[var] = item
                try:
                    self._run(block.body)
                except _Continue:
                    continue
                except _Break:
                    break
        finally:
            if saved is None:
                scope.pop(var, None)
            else:
                scope[var] = saved

    def _while(self, block: LoopBlock) -> None:
        for _ in range(100000):
            if not self._condition(block.head):
                return
            try:
                self._run(block.body)
            except _Continue:
                continue
            except _Break:
                return
        raise UnitError(f"{block.head.where()}: while() ran 100000 times; giving up")

    def _define(self, block: DefBlock) -> None:
        if self._mode == "flags":
            return                       # a toolchain file's helpers are not used (see FLAGS_MODE_SKIPPED)
        args = self._args(block.head)
        if not args:
            raise UnitError(f"{block.head.where()}: {block.kind}() needs a name")
        self._commands[args[0].lower()] = _Definition(block.kind, args[0], args[1:], block.body,
                                                      block.head.where())

    def _command(self, cmd: Command) -> None:
        name = cmd.name
        if self._mode == "flags" and name in FLAGS_MODE_SKIPPED:
            return
        if name in ("break", "continue", "return"):
            raise {"break": _Break, "continue": _Continue, "return": _Return}[name]()
        definition = self._commands.get(name)
        if definition is not None and name not in _REACTOS_FACTS:
            self._call(definition, cmd, self._args(cmd))
            return
        handler = getattr(self, "_cmd_" + name.lstrip("_"), None) if name not in IGNORED else None
        if handler is not None:
            handler(cmd, self._args(cmd))
        elif name not in IGNORED:
            raise UnitError(f"{cmd.where()}: unknown CMake command {name}()")

    def _call(self, definition: _Definition, cmd: Command, args: list[str]) -> None:
        if len(args) < len(definition.params):
            raise UnitError(f"{cmd.where()}: {definition.name}() called with {len(args)} arguments, expects at "
                            f"least {len(definition.params)} (defined at {definition.where})")
        if len(self._stack) > 100:
            raise UnitError(f"{cmd.where()}: calls nested more than 100 deep")
        extra = args[len(definition.params):]
        self._stack.append(cmd.where())
        try:
            if definition.kind == "function":
                scope = dict(self._vars)
                scope.update({p: a for p, a in zip(definition.params, args)})
                scope.update({"ARGC": str(len(args)), "ARGV": ";".join(args), "ARGN": ";".join(extra)})
                scope.update({f"ARGV{i}": a for i, a in enumerate(args)})
                self._frames.append(_Frame(scope, self._vars))
                try:
                    self._run(definition.body)
                except _Return:
                    pass
                finally:
                    self._frames.pop()
            else:
                mapping = {p: a for p, a in zip(definition.params, args)}
                mapping.update({"ARGC": str(len(args)), "ARGV": ";".join(args), "ARGN": ";".join(extra)})
                mapping.update({f"ARGV{i}": a for i, a in enumerate(args)})
                self._run(substitute_macro(definition.body, mapping))
        except UnitError as exc:
            raise UnitError(f"{exc} (in {definition.name}() called from {cmd.where()})") from None
        finally:
            self._stack.pop()

    # ---- built-in commands: variables ----------------------------------------------------------------------------

    def _set_var(self, name: str, values: list[str]) -> None:
        if values:
            self._vars[name] = ";".join(values)
        else:
            self._vars.pop(name, None)

    def _cmd_set(self, cmd: Command, args: list[str]) -> None:
        if not args:
            raise UnitError(f"{cmd.where()}: set() needs a variable name")
        name, rest = args[0], args[1:]
        if "CACHE" in rest:
            i = rest.index("CACHE")
            options = rest[i + 1:]
            if len(options) < 2:
                raise UnitError(f"{cmd.where()}: set({name} ... CACHE <type> <docstring> [FORCE]) expected")
            if name not in self.cache or "FORCE" in options[2:]:
                self.cache[name] = ";".join(rest[:i])
            return
        if rest and rest[-1] == "PARENT_SCOPE":
            parent = self._frames[-1].parent_vars
            if parent is not None:
                if rest[:-1]:
                    parent[name] = ";".join(rest[:-1])
                else:
                    parent.pop(name, None)
            return
        self._set_var(name, rest)

    def _cmd_unset(self, cmd: Command, args: list[str]) -> None:
        if not args:
            raise UnitError(f"{cmd.where()}: unset() needs a variable name")
        if "CACHE" in args[1:]:
            self.cache.pop(args[0], None)
        elif "PARENT_SCOPE" in args[1:]:
            parent = self._frames[-1].parent_vars
            if parent is not None:
                parent.pop(args[0], None)
        else:
            self._vars.pop(args[0], None)

    def _cmd_option(self, cmd: Command, args: list[str]) -> None:
        if len(args) < 2:
            raise UnitError(f"{cmd.where()}: option(<variable> <help> [value]) expected")
        if args[0] not in self.cache and args[0] not in self._vars:
            self.cache[args[0]] = args[2] if len(args) > 2 else "OFF"

    def _cmd_cmake_dependent_option(self, cmd: Command, args: list[str]) -> None:
        if len(args) != 5:
            raise UnitError(f"{cmd.where()}: cmake_dependent_option(<option> <help> <value> <depends> <force>) "
                            f"expected")
        name, _doc, value, depends, force = args
        satisfied = True
        for dep in split_list(depends):
            head = parse(f"if({dep})\nendif()\n", Path(str(cmd.file)))[0].head
            fake = Command("if", head.args, cmd.file, cmd.line)
            if not evaluate_condition(self._condition_args(fake), self, cmd.where()):
                satisfied = False
        if satisfied:
            if name not in self.cache:
                self.cache[name] = value
        else:
            self._vars[name] = force

    def _cmd_list(self, cmd: Command, args: list[str]) -> None:
        if len(args) < 2:
            raise UnitError(f"{cmd.where()}: list(<subcommand> <list> ...) expected")
        sub, name, rest = args[0], args[1], args[2:]
        items = split_list(self.variable(name) or "")
        where = cmd.where()
        if sub == "APPEND":
            if rest or self.variable(name) is not None:
                self._vars[name] = ";".join(([self.variable(name)] if self.variable(name) else []) + rest)
        elif sub == "PREPEND":
            if rest:
                self._vars[name] = ";".join(rest + ([self.variable(name)] if self.variable(name) else []))
        elif sub == "INSERT":
            index = self._index(rest[0] if rest else "", len(items) + 1, where)
            self._set_var(name, items[:index] + rest[1:] + items[index:])
        elif sub == "REMOVE_ITEM":
            self._set_var(name, [i for i in items if i not in rest])
        elif sub == "REMOVE_AT":
            drop = {self._index(r, len(items), where) for r in rest}
            self._set_var(name, [v for i, v in enumerate(items) if i not in drop])
        elif sub == "REMOVE_DUPLICATES":
            self._set_var(name, list(dict.fromkeys(items)))
        elif sub == "REVERSE":
            self._set_var(name, items[::-1])
        elif sub == "SORT":
            self._set_var(name, sorted(items))
        elif sub == "LENGTH" and len(rest) == 1:
            self._vars[rest[0]] = str(len(items))
        elif sub == "GET" and len(rest) >= 2:
            self._vars[rest[-1]] = ";".join(items[self._index(r, len(items), where)] for r in rest[:-1])
        elif sub == "FIND" and len(rest) == 2:
            self._vars[rest[1]] = str(items.index(rest[0]) if rest[0] in items else -1)
        elif sub == "JOIN" and len(rest) == 2:
            self._vars[rest[1]] = rest[0].join(items)
        elif sub == "SUBLIST" and len(rest) == 3:
            start, length = int(rest[0]), int(rest[1])
            self._vars[rest[2]] = ";".join(items[start:] if length < 0 else items[start:start + length])
        elif sub in ("POP_BACK", "POP_FRONT"):
            popped = items[-1:] if sub == "POP_BACK" else items[:1]
            self._set_var(name, items[:-1] if sub == "POP_BACK" else items[1:])
            if rest:
                self._set_var(rest[0], popped)
        elif sub == "FILTER" and len(rest) == 3 and rest[0] in ("INCLUDE", "EXCLUDE") and rest[1] == "REGEX":
            pattern = re.compile(rest[2])
            keep = rest[0] == "INCLUDE"
            self._set_var(name, [i for i in items if bool(pattern.search(i)) == keep])
        else:
            raise UnitError(f"{where}: list({sub} ...) is not supported or has wrong arguments")

    @staticmethod
    def _index(text: str, size: int, where: str) -> int:
        try:
            index = int(text)
        except ValueError:
            raise UnitError(f"{where}: list index {text!r} is not an integer") from None
        if index < 0:
            index += size
        if not 0 <= index < max(size, 1):
            raise UnitError(f"{where}: list index {text} out of range (size {size})")
        return index

    def _cmd_string(self, cmd: Command, args: list[str]) -> None:
        where = cmd.where()
        if not args:
            raise UnitError(f"{where}: string() needs a subcommand")
        sub, rest = args[0], args[1:]

        def need(n: int) -> None:
            if len(rest) < n:
                raise UnitError(f"{where}: string({sub}) needs {n} arguments, got {len(rest)}")

        if sub in ("STRIP", "TOLOWER", "TOUPPER", "LENGTH"):
            need(2)
            fn = {"STRIP": str.strip, "TOLOWER": str.lower, "TOUPPER": str.upper,
                  "LENGTH": lambda s: str(len(s))}[sub]
            self._vars[rest[1]] = fn(rest[0])
        elif sub == "REPLACE":
            need(3)
            self._vars[rest[2]] = "".join(rest[3:]).replace(rest[0], rest[1])
        elif sub == "REGEX":
            need(3)
            mode, pattern = rest[0], re.compile(rest[1])
            if mode == "MATCH":
                m = pattern.search("".join(rest[3:]))
                self._vars[rest[2]] = m.group(0) if m else ""
            elif mode == "MATCHALL":
                self._vars[rest[2]] = ";".join(m.group(0) for m in pattern.finditer("".join(rest[3:])))
            elif mode == "REPLACE":
                need(4)
                self._vars[rest[3]] = pattern.sub(rest[2], "".join(rest[4:]))
            else:
                raise UnitError(f"{where}: string(REGEX {mode}) is not supported")
        elif sub in ("APPEND", "PREPEND"):
            need(1)
            old = self.variable(rest[0]) or ""
            text = "".join(rest[1:])
            self._vars[rest[0]] = old + text if sub == "APPEND" else text + old
        elif sub == "CONCAT":
            need(1)
            self._vars[rest[0]] = "".join(rest[1:])
        elif sub == "JOIN":
            need(2)
            self._vars[rest[1]] = rest[0].join(rest[2:])
        elif sub == "SUBSTRING":
            need(4)
            begin, length = int(rest[1]), int(rest[2])
            self._vars[rest[3]] = rest[0][begin:] if length < 0 else rest[0][begin:begin + length]
        elif sub == "FIND":
            need(3)
            text, needle = rest[0], rest[1]
            self._vars[rest[2]] = str(text.rfind(needle) if "REVERSE" in rest[3:] else text.find(needle))
        else:
            raise UnitError(f"{where}: string({sub} ...) is not supported")

    def _cmd_math(self, cmd: Command, args: list[str]) -> None:
        if len(args) < 3 or args[0] != "EXPR":
            raise UnitError(f"{cmd.where()}: math(EXPR <variable> <expression>) expected")
        value = _math(args[2], cmd.where())
        hexa = args[3:5] == ["OUTPUT_FORMAT", "HEXADECIMAL"]
        self._vars[args[1]] = hex(value) if hexa else str(value)

    def _cmd_get_filename_component(self, cmd: Command, args: list[str]) -> None:
        if len(args) < 3:
            raise UnitError(f"{cmd.where()}: get_filename_component(<var> <file> <mode>) expected")
        var, name, mode = args[:3]
        path = Path(name)
        base_name = path.name
        if mode in ("DIRECTORY", "PATH"):
            value = str(path.parent) if str(path.parent) != "." else ""
        elif mode == "NAME":
            value = base_name
        elif mode == "EXT":
            value = base_name[base_name.index("."):] if "." in base_name else ""
        elif mode == "NAME_WE":
            value = base_name.split(".", 1)[0]
        elif mode == "LAST_EXT":
            value = base_name[base_name.rindex("."):] if "." in base_name else ""
        elif mode == "NAME_WLE":
            value = base_name[:base_name.rindex(".")] if "." in base_name else base_name
        elif mode in ("ABSOLUTE", "REALPATH"):
            base = Path(args[args.index("BASE_DIR") + 1]) if "BASE_DIR" in args[3:] else self._dir.source_dir
            value = str(_norm(path if path.is_absolute() else base / path))
            if mode == "REALPATH":
                value = os.path.realpath(value)
        else:
            raise UnitError(f"{cmd.where()}: get_filename_component mode {mode!r} is not supported")
        if "CACHE" in args[3:]:
            self.cache.setdefault(var, value)
        else:
            self._vars[var] = value

    def _cmd_cmake_parse_arguments(self, cmd: Command, args: list[str]) -> None:
        if args[:1] == ["PARSE_ARGV"]:
            if len(args) != 6 or not args[1].isdigit():
                raise UnitError(f"{cmd.where()}: cmake_parse_arguments(PARSE_ARGV <N> <prefix> <options> "
                                f"<one_value> <multi_value>) expected")
            count = int(self.variable("ARGC") or "0")
            values = [self.variable(f"ARGV{i}") or "" for i in range(int(args[1]), count)]
            prefix, options, ones, multis = args[2:6]
        else:
            if len(args) < 4:
                raise UnitError(f"{cmd.where()}: cmake_parse_arguments(<prefix> <options> <one_value> "
                                f"<multi_value> <args>...) expected")
            prefix, options, ones, multis = args[:4]
            values = args[4:]
        opt_names, one_names, multi_names = split_list(options), split_list(ones), split_list(multis)
        found: dict[str, list[str]] = {}
        seen_opts: set[str] = set()
        unparsed: list[str] = []
        missing: list[str] = []
        current: str | None = None
        for value in values:
            if value in opt_names:
                seen_opts.add(value)
                current = None
            elif value in one_names or value in multi_names:
                current = value
                found[value] = []
            elif current is not None:
                found[current].append(value)
                if current in one_names:
                    current = None
            else:
                unparsed.append(value)
        for name in opt_names:
            self._vars[f"{prefix}_{name}"] = "TRUE" if name in seen_opts else "FALSE"
        for name in one_names + multi_names:
            key = f"{prefix}_{name}"
            if found.get(name):
                self._vars[key] = ";".join(found[name])
            else:
                self._vars.pop(key, None)
                if name in found:
                    missing.append(name)
        self._set_var(f"{prefix}_UNPARSED_ARGUMENTS", unparsed)
        self._set_var(f"{prefix}_KEYWORDS_MISSING_VALUES", missing)

    def _cmd_message(self, cmd: Command, args: list[str]) -> None:
        modes = {"FATAL_ERROR", "SEND_ERROR", "WARNING", "AUTHOR_WARNING", "DEPRECATION", "NOTICE", "STATUS",
                 "VERBOSE", "DEBUG", "TRACE", "CHECK_START", "CHECK_PASS", "CHECK_FAIL"}
        mode = args[0] if args and args[0] in modes else "NOTICE"
        text = "".join(args[1:] if args and args[0] in modes else args)
        if mode in ("FATAL_ERROR", "SEND_ERROR"):
            raise UnitError(f"{cmd.where()}: message({mode}): {text}")
        self.messages.append(f"{cmd.where()}: {text}")

    # ---- built-in commands: files and directories ---------------------------------------------------------------

    def _cmd_include(self, cmd: Command, args: list[str]) -> None:
        if not args:
            raise UnitError(f"{cmd.where()}: include() needs a file")
        name = args[0]
        path = _norm(Path(name) if Path(name).is_absolute() else self._dir.source_dir / name)
        if not path.is_file():
            if name in BUILTIN_MODULES or "OPTIONAL" in args[1:]:
                return
            raise UnitError(f"{cmd.where()}: include({name}): no file {self.display(path)}")
        if "RESULT_VARIABLE" in args[1:]:
            self._vars[args[args.index("RESULT_VARIABLE") + 1]] = str(path)
        self._include(path)

    def _cmd_add_subdirectory(self, cmd: Command, args: list[str]) -> None:
        if not args:
            raise UnitError(f"{cmd.where()}: add_subdirectory() needs a folder")
        src = self._resolve(args[0], self._dir.source_dir)
        snapshot = self._dir.state.copy(self._vars)
        if self._dir.path_mode:
            self._deferred[src] = (snapshot, self._vars)
            return
        if not (src / "CMakeLists.txt").is_file():
            raise UnitError(f"{cmd.where()}: add_subdirectory({args[0]}): no {self.display(src)}/CMakeLists.txt")
        self._run_directory(src, snapshot, self._vars, path_mode=False)

    def _cmd_project(self, cmd: Command, args: list[str]) -> None:
        if not args:
            raise UnitError(f"{cmd.where()}: project() needs a name")
        d = self._dir
        self._vars.update({"PROJECT_NAME": args[0], "PROJECT_SOURCE_DIR": str(d.source_dir),
                           "PROJECT_BINARY_DIR": str(d.binary_dir), f"{args[0]}_SOURCE_DIR": str(d.source_dir),
                           f"{args[0]}_BINARY_DIR": str(d.binary_dir)})

    def _entries(self, cmd: Command, values: list[str]) -> list[Entry]:
        return [Entry(v, cmd.where(), self._dir.source_dir) for v in values]

    def _cmd_include_directories(self, cmd: Command, args: list[str]) -> None:
        before = bool(args) and args[0] == "BEFORE"
        values = [a for a in args if a not in ("AFTER", "BEFORE", "SYSTEM")]
        entries = self._entries(cmd, values)
        d = self._dir
        # CMake: the directory property and every target already created in this directory.
        lists = [d.state.include_dirs] + [self.targets[n].include_dirs for n in d.targets]
        for lst in lists:
            if before:
                lst[:0] = entries
            else:
                lst += entries

    def _cmd_add_definitions(self, cmd: Command, args: list[str]) -> None:
        for flag in args:
            match = _DEFINE_FLAG.match(flag)
            if match:
                self._dir.state.definitions.append(Entry(match.group(1), cmd.where(), self._dir.source_dir))
            else:
                self._dir.state.define_flags.append(Entry(flag, cmd.where(), self._dir.source_dir))

    def _cmd_remove_definitions(self, cmd: Command, args: list[str]) -> None:
        state = self._dir.state
        for flag in args:
            match = _DEFINE_FLAG.match(flag)
            if match:
                state.definitions = [e for e in state.definitions if e.value != match.group(1)]
            else:
                state.define_flags = [e for e in state.define_flags if e.value != flag]

    def _cmd_add_compile_definitions(self, cmd: Command, args: list[str]) -> None:
        self._dir.state.definitions += self._entries(cmd, [a[2:] if a.startswith("-D") else a for a in args])

    def _cmd_add_compile_options(self, cmd: Command, args: list[str]) -> None:
        self._dir.state.compile_options += self._entries(cmd, args)

    def _cmd_add_link_options(self, cmd: Command, args: list[str]) -> None:
        self._dir.state.link_options += self._entries(cmd, args)

    # ---- built-in commands: targets ----------------------------------------------------------------------------

    def _existing(self, cmd: Command, name: str) -> Target:
        t = self.targets.get(name)
        if t is None:
            raise UnitError(f"{cmd.where()}: {cmd.name}(): no target {name!r} (not defined before this line)")
        return self.targets[t.alias_of] if t.alias_of else t

    def _new_target(self, cmd: Command, name: str, kind: str, sources: list[str], imported: bool = False) -> Target:
        old = self.targets.get(name)
        if old is not None:
            raise UnitError(f"{cmd.where()}: target {name!r} already defined at {old.where}")
        d = self._dir
        t = Target(name, kind, d, cmd.where(), imported=imported, sources=self._entries(cmd, sources),
                   include_dirs=list(d.state.include_dirs), compile_options=list(d.state.compile_options),
                   link_options=list(d.state.link_options))
        self.targets[name] = t
        d.targets.append(name)
        return t

    def _cmd_add_library(self, cmd: Command, args: list[str]) -> None:
        if not args:
            raise UnitError(f"{cmd.where()}: add_library() needs a name")
        name, rest = args[0], args[1:]
        if rest[:1] == ["ALIAS"]:
            if len(rest) != 2:
                raise UnitError(f"{cmd.where()}: add_library(<name> ALIAS <target>) expected")
            real = self._existing(cmd, rest[1])
            self._new_target(cmd, name, real.type, []).alias_of = real.name
            return
        kind = "SHARED" if truthy(self.variable("BUILD_SHARED_LIBS")) else "STATIC"
        if rest and rest[0] in _LIBRARY_TYPES:
            kind, rest = rest[0], rest[1:]
        imported = "IMPORTED" in rest[:1]
        if imported:
            rest = [r for r in rest[1:] if r != "GLOBAL"]
        rest = [r for r in rest if r != "EXCLUDE_FROM_ALL"]
        self._new_target(cmd, name, kind, rest, imported)

    def _cmd_add_executable(self, cmd: Command, args: list[str]) -> None:
        if not args:
            raise UnitError(f"{cmd.where()}: add_executable() needs a name")
        rest = [r for r in args[1:] if r not in ("WIN32", "MACOSX_BUNDLE", "EXCLUDE_FROM_ALL")]
        self._new_target(cmd, args[0], "EXECUTABLE", rest)

    def _scoped(self, cmd: Command, args: list[str], extra_flags: tuple[str, ...] = ()) \
            -> tuple[Target, list[tuple[str, str]], set[str]]:
        """Split ``tgt [flags] (PRIVATE|PUBLIC|INTERFACE items...)...`` into (scope, item) pairs."""
        if not args:
            raise UnitError(f"{cmd.where()}: {cmd.name}() needs a target")
        t = self._existing(cmd, args[0])
        scope: str | None = None
        items: list[tuple[str, str]] = []
        flags: set[str] = set()
        for a in args[1:]:
            if a in ("PRIVATE", "PUBLIC", "INTERFACE"):
                scope = a
            elif scope is None and a in extra_flags:
                flags.add(a)
            elif scope is None:
                raise UnitError(f"{cmd.where()}: {cmd.name}({t.name} ...): expected PRIVATE, PUBLIC or INTERFACE "
                                f"before {a!r}")
            else:
                items.append((scope, a))
        return t, items, flags

    def _add_scoped(self, cmd: Command, t: Target, items: list[tuple[str, str]], private: list[Entry],
                    interface_key: str, before: bool = False, strip_d: bool = False) -> None:
        mine, theirs = [], []
        for scope, value in items:
            if strip_d and value.startswith("-D"):
                value = value[2:]
            entry = Entry(value, cmd.where(), self._dir.source_dir)
            if scope in ("PRIVATE", "PUBLIC"):
                mine.append(entry)
            if scope in ("INTERFACE", "PUBLIC"):
                theirs.append(entry)
        if before:
            private[:0] = mine
        else:
            private += mine
        t.interface.setdefault(interface_key, []).extend(theirs)

    def _cmd_target_compile_definitions(self, cmd: Command, args: list[str]) -> None:
        t, items, _ = self._scoped(cmd, args)
        self._add_scoped(cmd, t, items, t.compile_definitions, "INTERFACE_COMPILE_DEFINITIONS", strip_d=True)

    def _cmd_target_include_directories(self, cmd: Command, args: list[str]) -> None:
        t, items, flags = self._scoped(cmd, args, ("SYSTEM", "BEFORE", "AFTER"))
        self._add_scoped(cmd, t, items, t.include_dirs, "INTERFACE_INCLUDE_DIRECTORIES", before="BEFORE" in flags)

    def _cmd_target_compile_options(self, cmd: Command, args: list[str]) -> None:
        t, items, flags = self._scoped(cmd, args, ("BEFORE",))
        self._add_scoped(cmd, t, items, t.compile_options, "INTERFACE_COMPILE_OPTIONS", before="BEFORE" in flags)

    def _cmd_target_link_options(self, cmd: Command, args: list[str]) -> None:
        t, items, flags = self._scoped(cmd, args, ("BEFORE",))
        self._add_scoped(cmd, t, items, t.link_options, "INTERFACE_LINK_OPTIONS", before="BEFORE" in flags)

    def _cmd_target_sources(self, cmd: Command, args: list[str]) -> None:
        t, items, _ = self._scoped(cmd, args)
        self._add_scoped(cmd, t, items, t.sources, "INTERFACE_SOURCES")

    def _cmd_target_link_libraries(self, cmd: Command, args: list[str]) -> None:
        if not args:
            raise UnitError(f"{cmd.where()}: target_link_libraries() needs a target")
        t = self._existing(cmd, args[0])
        keywords = {"PRIVATE": "PRIVATE", "PUBLIC": "PUBLIC", "INTERFACE": "INTERFACE",
                    "LINK_PRIVATE": "PRIVATE", "LINK_PUBLIC": "PUBLIC", "LINK_INTERFACE_LIBRARIES": "INTERFACE"}
        scope = "PLAIN"
        skip_next = False
        items: list[tuple[str, str]] = []
        rest = args[1:]
        for i, a in enumerate(rest):
            if skip_next:
                skip_next = False
                continue
            if a in keywords:
                scope = keywords[a]
            elif a == "general":
                continue
            elif a in ("debug", "optimized"):
                # One configuration is read: keep the item that applies to it.
                wanted = "debug" if self.config.upper() == "DEBUG" else "optimized"
                if a != wanted:
                    skip_next = True
            else:
                items.append((scope, a))
        for scope, value in items:
            entry = Entry(value, cmd.where(), self._dir.source_dir)
            if scope in ("PRIVATE", "PUBLIC", "PLAIN"):
                t.link_libraries.append(entry)
            if scope in ("INTERFACE", "PUBLIC", "PLAIN"):
                t.interface.setdefault("INTERFACE_LINK_LIBRARIES", []).append(entry)

    _LIST_PROPERTIES = {"SOURCES": "sources", "INCLUDE_DIRECTORIES": "include_dirs",
                        "COMPILE_DEFINITIONS": "compile_definitions", "COMPILE_OPTIONS": "compile_options",
                        "LINK_LIBRARIES": "link_libraries", "LINK_OPTIONS": "link_options"}

    def _set_target_property(self, cmd: Command, t: Target, name: str, values: list[str], append: bool) -> None:
        entries = self._entries(cmd, values)
        if name in self._LIST_PROPERTIES:
            lst = getattr(t, self._LIST_PROPERTIES[name])
            if not append:
                lst.clear()
            lst += entries
        elif name.startswith("INTERFACE_"):
            lst = t.interface.setdefault(name, [])
            if not append:
                lst.clear()
            lst += entries
        else:
            old = t.properties.get(name, "") if append else ""
            t.properties[name] = ";".join(([old] if old else []) + values)

    def _cmd_set_target_properties(self, cmd: Command, args: list[str]) -> None:
        if "PROPERTIES" not in args:
            raise UnitError(f"{cmd.where()}: set_target_properties(<targets> PROPERTIES <name> <value>...) "
                            f"expected")
        i = args.index("PROPERTIES")
        pairs = args[i + 1:]
        if len(pairs) % 2:
            raise UnitError(f"{cmd.where()}: set_target_properties(): a property without a value")
        for name in args[:i]:
            t = self._existing(cmd, name)
            for k in range(0, len(pairs), 2):
                self._set_target_property(cmd, t, pairs[k], split_list(pairs[k + 1]) or [""], append=False)

    def _cmd_get_target_property(self, cmd: Command, args: list[str]) -> None:
        if len(args) != 3:
            raise UnitError(f"{cmd.where()}: get_target_property(<var> <target> <property>) expected")
        t = self._existing(cmd, args[1])
        value = self.target_property(t, args[2])
        self._vars[args[0]] = value if value else f"{args[0]}-NOTFOUND"

    def _source_key(self, name: str) -> Path:
        return self._resolve(name, self._dir.source_dir)

    def _set_source_property(self, path: Path, name: str, value: str, append: bool) -> None:
        props = self.source_properties.setdefault(path, {})
        if append and props.get(name):
            props[name] = props[name] + ";" + value
        else:
            props[name] = value

    def _cmd_set_source_files_properties(self, cmd: Command, args: list[str]) -> None:
        if "PROPERTIES" not in args:
            raise UnitError(f"{cmd.where()}: set_source_files_properties(<files> PROPERTIES <name> <value>...) "
                            f"expected")
        i = args.index("PROPERTIES")
        files = args[:i]
        for scope_word in ("DIRECTORY", "TARGET_DIRECTORY"):
            if scope_word in files:
                files = files[:files.index(scope_word)]
        pairs = args[i + 1:]
        if len(pairs) % 2:
            raise UnitError(f"{cmd.where()}: set_source_files_properties(): a property without a value")
        for f in files:
            for k in range(0, len(pairs), 2):
                self._set_source_property(self._source_key(f), pairs[k], pairs[k + 1], append=False)

    def _cmd_set_property(self, cmd: Command, args: list[str]) -> None:
        if not args or "PROPERTY" not in args:
            raise UnitError(f"{cmd.where()}: set_property(<scope> [names] [APPEND] PROPERTY <name> [values]) "
                            f"expected")
        i = args.index("PROPERTY")
        head, tail = args[:i], args[i + 1:]
        if not tail:
            raise UnitError(f"{cmd.where()}: set_property(): PROPERTY needs a name")
        append = "APPEND" in head or "APPEND_STRING" in head
        head = [h for h in head if h not in ("APPEND", "APPEND_STRING")]
        scope, names = head[0], head[1:]
        name, values = tail[0], tail[1:]
        if scope == "TARGET":
            for n in names:
                self._set_target_property(cmd, self._existing(cmd, n), name, values, append)
        elif scope == "SOURCE":
            for n in names:
                self._set_source_property(self._source_key(n), name, ";".join(values), append)
        elif scope == "GLOBAL":
            old = self.global_properties.get(name, "") if append else ""
            self.global_properties[name] = ";".join(([old] if old else []) + values)
        elif scope == "DIRECTORY" and not names:
            state = self._dir.state
            lists = {"COMPILE_DEFINITIONS": "definitions", "INCLUDE_DIRECTORIES": "include_dirs",
                     "COMPILE_OPTIONS": "compile_options"}
            if name not in lists:
                raise UnitError(f"{cmd.where()}: set_property(DIRECTORY PROPERTY {name}) is not supported")
            lst = getattr(state, lists[name])
            if not append:
                lst.clear()
            lst += self._entries(cmd, values)
        else:
            raise UnitError(f"{cmd.where()}: set_property({scope} ...) is not supported")

    # ---- ReactOS macros: recorded as facts ----------------------------------------------------------------------

    def _cmd_spec2def(self, cmd: Command, args: list[str]) -> None:
        if len(args) < 2:
            raise UnitError(f"{cmd.where()}: spec2def(<dll> <spec> [ADD_IMPORTLIB] [VERSION <v>]) expected")
        dll, spec, options = args[0], args[1], args[2:]
        if not spec.endswith(".spec"):
            raise UnitError(f"{cmd.where()}: spec2def only takes .spec files, got {spec!r}")
        version = options[options.index("VERSION") + 1] if "VERSION" in options[:-1] else None
        stem = Path(dll).name.split(".", 1)[0]
        self.facts.spec2def.append(Spec2Def(dll, self._resolve(spec, self._dir.source_dir), version,
                                            "ADD_IMPORTLIB" in options, _norm(self._dir.binary_dir / f"{stem}.def"),
                                            cmd.where()))

    def _cmd_add_importlibs(self, cmd: Command, args: list[str]) -> None:
        if len(args) < 2:
            raise UnitError(f"{cmd.where()}: add_importlibs(<module> <libraries>...) expected")
        self.facts.importlibs.setdefault(args[0], []).extend(self._entries(cmd, args[1:]))

    def _cmd_set_module_type(self, cmd: Command, args: list[str]) -> None:
        if len(args) < 2:
            raise UnitError(f"{cmd.where()}: set_module_type(<module> <type> ...) expected")
        module, kind, rest = args[0], args[1], args[2:]
        entry = entry_args = image_base = None
        i = 0
        while i < len(rest):
            word = rest[i]
            if word == "ENTRYPOINT" and i + 1 < len(rest):
                entry = rest[i + 1]
                i += 2
                if i < len(rest) and rest[i].isdigit():
                    entry_args = int(rest[i])
                    i += 1
            elif word == "IMAGEBASE" and i + 1 < len(rest):
                image_base = rest[i + 1]
                i += 2
            elif word == "UNICODE":
                i += 1
            else:
                raise UnitError(f"{cmd.where()}: set_module_type({module} {kind} ...): unexpected {word!r}")
        self.facts.module_types[module] = ModuleType(kind, entry, entry_args, image_base, cmd.where())

    def _cmd_add_asm_files(self, cmd: Command, args: list[str]) -> None:
        if not args:
            raise UnitError(f"{cmd.where()}: add_asm_files(<variable> <files>...) expected")
        var, files = args[0], args[1:]
        d = self._dir
        out: list[str] = []
        for f in files:
            name = Path(f).name
            ext = name[name.index("."):] if "." in name else ""
            if ext in (".asm", ".inc"):
                generated = _norm(d.binary_dir / (f + (".s" if ext == ".asm" else ".h")))
                self.facts.asm_conversions[generated] = (self._resolve(f, d.source_dir), "asmpp")
                out.append(str(generated))
            else:
                out.append(f)
        old = self.variable(var)
        self._set_var(var, ([old] if old else []) + out)


#: ReactOS macros handled here even when a file defines them (a toolchain file's definitions are not run).
_REACTOS_FACTS = frozenset({"spec2def", "add_importlibs", "set_module_type", "add_asm_files"})

