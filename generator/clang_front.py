"""libclang front end: one configured index, the compile arguments, and the C entry points cindex.py lacks.

The PyPI ``libclang`` wheel ships ``libclang.so`` but no builtin headers (``stddef.h``, intrinsics), so the
resource directory of Debian's ``libclang-common-<major>-dev`` is passed explicitly; its major version must match
the library's (other pairings give spurious errors or crashes, see the team's toolchain notes).

``cindex.py`` (16.0.6) does not wrap ``clang_Cursor_Evaluate``, the ``clang_EvalResult_*`` family or
``clang_Location_isFromMainFile``; they are bound here with ctypes against the library cindex already loaded.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from clang import cindex

TRIPLE = "x86_64-w64-mingw32"
#: Arguments that make libclang accept kernel-style C as mingw-w64 gcc does (MS anonymous members, pragma pack).
BASE_ARGS = ["-x", "c", "-std=gnu11", f"--target={TRIPLE}", "-fms-extensions", "-Wno-pragma-pack"]

# CXEvalResultKind values (clang-c/Index.h).
_EVAL_INT = 1

_bound = False


class FrontEndError(RuntimeError):
    """libclang or its builtin headers are missing or unusable."""


def _lib():
    """The loaded libclang with the extra prototypes bound (once)."""
    global _bound
    lib = cindex.conf.lib
    if not _bound:
        cursor = cindex.Cursor
        lib.clang_Cursor_Evaluate.argtypes = [cursor]
        lib.clang_Cursor_Evaluate.restype = ctypes.c_void_p
        lib.clang_EvalResult_getKind.argtypes = [ctypes.c_void_p]
        lib.clang_EvalResult_getKind.restype = ctypes.c_int
        lib.clang_EvalResult_isUnsignedInt.argtypes = [ctypes.c_void_p]
        lib.clang_EvalResult_isUnsignedInt.restype = ctypes.c_uint
        lib.clang_EvalResult_getAsUnsigned.argtypes = [ctypes.c_void_p]
        lib.clang_EvalResult_getAsUnsigned.restype = ctypes.c_ulonglong
        lib.clang_EvalResult_getAsLongLong.argtypes = [ctypes.c_void_p]
        lib.clang_EvalResult_getAsLongLong.restype = ctypes.c_longlong
        lib.clang_EvalResult_dispose.argtypes = [ctypes.c_void_p]
        lib.clang_EvalResult_dispose.restype = None
        lib.clang_Location_isFromMainFile.argtypes = [cindex.SourceLocation]
        lib.clang_Location_isFromMainFile.restype = ctypes.c_int
        _bound = True
    return lib


def clang_version() -> str:
    """The loaded libclang's version string (e.g. ``clang version 16.0.6``)."""
    lib = cindex.conf.lib
    fn = lib.clang_getClangVersion
    fn.restype = cindex._CXString
    fn.argtypes = []
    return cindex._CXString.from_result(fn())


def resource_dir() -> Path:
    """The clang builtin-header folder matching the loaded libclang's major version.

    ``GEN2HAL_CLANG_RESOURCE_DIR`` overrides the search (for other distributions).
    """
    override = os.environ.get("GEN2HAL_CLANG_RESOURCE_DIR")
    if override:
        path = Path(override)
        if not (path / "include" / "stddef.h").is_file():
            raise FrontEndError(f"GEN2HAL_CLANG_RESOURCE_DIR={override}: no include/stddef.h there")
        return path
    version = clang_version()
    major = ""
    for word in version.split():
        if word[:1].isdigit():
            major = word.split(".")[0]
            break
    candidates = sorted(glob.glob(f"/usr/lib/llvm-{major}/lib/clang/{major}*"))
    for cand in candidates:
        if Path(cand, "include", "stddef.h").is_file():
            return Path(cand)
    raise FrontEndError(
        f"clang {major} builtin headers not found (/usr/lib/llvm-{major}/lib/clang/{major}): install Debian's "
        f"libclang-common-{major}-dev, or set GEN2HAL_CLANG_RESOURCE_DIR")


def compile_args(defines: list[str], include_dirs: list[Path], system_dirs: list[Path]) -> list[str]:
    """libclang arguments: the base set, the resource dir, ``-D`` defines, ``-I`` then ``-isystem`` folders."""
    args = list(BASE_ARGS) + ["-resource-dir", str(resource_dir())]
    args += [f"-D{d}" for d in defines]
    args += [f"-I{p}" for p in include_dirs]
    for p in system_dirs:
        args += ["-isystem", str(p)]
    return args


#: Compiler flags of a unit's translation units that change how a file parses; the rest (optimisation, warnings,
#: code generation) do not matter to libclang and some (``-Werror``) would turn harmless warnings into refusals.
_PARSE_FLAGS = ("-fms-extensions", "-nostdinc", "-std=", "-U", "-funsigned-char", "-fshort-wchar")


def source_args(source) -> list[str]:
    """libclang arguments for one translation unit of a build unit (``generator.unit.Source``).

    The unit's defines and include folders in its order; of its extra compiler flags only those that affect
    parsing. With ``-nostdinc`` (upstream ReactOS builds so) clang's own builtin headers are added back as the
    last system folder, as gcc's would be: intrinsics and ``stdarg.h`` come from the compiler.
    """
    extra = [f for f in source.extra_flags if f.startswith(_PARSE_FLAGS)]
    args = list(BASE_ARGS) + ["-resource-dir", str(resource_dir())] + extra
    args += [f"-D{d}" for d in source.defines]
    args += [f"-I{p}" for p in source.include_dirs]
    if "-nostdinc" in extra:
        args += ["-isystem", str(resource_dir() / "include")]
    return args


@dataclass(frozen=True)
class Diagnostic:
    """One error-or-worse diagnostic, with its location."""

    file: str
    line: int
    column: int
    severity: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"


_local = threading.local()


def index() -> cindex.Index:
    """This thread's libclang index (one per thread: parses run in parallel threads, ctypes releases the GIL
    during ``clang_parseTranslationUnit``, and separate indexes share no state)."""
    idx = getattr(_local, "index", None)
    if idx is None:
        _lib()
        idx = _local.index = cindex.Index.create()
    return idx


def parse(path: Path, args: list[str], detailed: bool = False) -> tuple[cindex.TranslationUnit | None,
                                                                          list[Diagnostic]]:
    """Parse one C file; returns the translation unit and its error (or fatal) diagnostics.

    The unit is ``None`` when libclang could not produce one at all (reported as a diagnostic at line 0).
    ``detailed`` adds macro-instantiation cursors, which the analysis does not need (macros are folded by
    evaluation), so it is off by default for speed.
    """
    options = cindex.TranslationUnit.PARSE_DETAILED_PROCESSING_RECORD if detailed else 0
    try:
        tu = index().parse(str(path), args=args, options=options)
    except cindex.TranslationUnitLoadError as exc:
        return None, [Diagnostic(str(path), 0, 0, "fatal", f"libclang could not parse the file: {exc}")]
    return tu, _errors(tu, path)


def _errors(tu: cindex.TranslationUnit, path: Path) -> list[Diagnostic]:
    errors = []
    for diag in tu.diagnostics:
        if diag.severity < cindex.Diagnostic.Error:
            continue
        loc = diag.location
        where = loc.file.name if loc.file is not None else str(path)
        severity = "fatal" if diag.severity >= cindex.Diagnostic.Fatal else "error"
        errors.append(Diagnostic(where, loc.line, loc.column, severity, diag.spelling))
    return errors


_FIRST_DIRECTIVE = re.compile(rb'^\s*#\s*(\w+)\s*([<"][^>"]+[>"])?', re.M)


def leading_include(path: Path) -> str | None:
    """The header a C file includes first, when its first preprocessor directive is that ``#include``.

    Only then may a precompiled copy of the header stand in for it: a ``#define`` before the include would
    change what the header means for this file. Comments before the include are fine (they are skipped by
    looking at directives only); code before it is not expected in C files of this kind.
    """
    text = path.read_bytes()
    text = re.sub(rb"/\*.*?\*/", b"", text, flags=re.S)
    text = re.sub(rb"//[^\n]*", b"", text)
    match = _FIRST_DIRECTIVE.search(text)
    if match is None or match.group(1) != b"include" or match.group(2) is None:
        return None
    return match.group(2).decode("utf-8", "replace")


def resolve_include(spelling: str, including_file: Path, args: list[str]) -> Path | None:
    """Where ``#include <x>`` / ``"x"`` of ``including_file`` resolves with ``args``' ``-I`` folders."""
    name = spelling[1:-1]
    folders = [a[2:] for a in args if a.startswith("-I")]
    if spelling.startswith('"'):
        folders.insert(0, str(including_file.parent))
    for folder in folders:
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    return None


def precompile(header: Path, args: list[str], out: Path) -> list[Diagnostic]:
    """Parse ``header`` once with ``args`` and save it as a precompiled header at ``out``.

    The files that include it first are then parsed with ``-include-pch`` (``pch_args``): the header's
    declarations are read back instead of parsed again, the largest cost of parsing kernel C (about 0.1 s a file
    for ReactOS's headers, 5 ms with the preamble). Returns the header's error diagnostics (the caller decides:
    each file that uses the preamble reports them as its own, as it would without one). Raises ``FrontEndError``
    if it cannot be saved.
    """
    try:
        tu = index().parse(str(header), args=["-x", "c-header"] + args,
                           options=cindex.TranslationUnit.PARSE_INCOMPLETE)
    except cindex.TranslationUnitLoadError as exc:
        raise FrontEndError(f"{header}: libclang could not parse the header: {exc}") from None
    errors = _errors(tu, header)
    try:
        tu.save(str(out))
    except cindex.TranslationUnitSaveError as exc:
        raise FrontEndError(f"{header}: could not save a precompiled header to {out}: {exc}") from None
    return errors


def pch_args(args: list[str], pch: Path) -> list[str]:
    """``args`` with the precompiled header ``pch`` read in before the file."""
    return list(args) + ["-include-pch", str(pch)]


def main_file_definitions(tu: cindex.TranslationUnit, path: Path, size: int) -> list[cindex.Cursor]:
    """The function definitions at file scope of ``tu``'s main file, in source order.

    Enumerating the translation unit's top-level cursors visits every declaration of every header (about
    10,000 for a ReactOS HAL file, 70 % of the analysis time). Instead the main file's tokens are scanned for
    the name before each file-scope ``{`` that follows a parameter list, and libclang is asked which cursor is
    there; only a ``FUNCTION_DECL`` that is a definition counts, so the scan proposes and clang decides.
    ``tests/test_analyze.py`` checks the result against the exhaustive enumeration.
    """
    punct, ident = cindex.TokenKind.PUNCTUATION, cindex.TokenKind.IDENTIFIER
    found: list[cindex.Cursor] = []
    seen: set[int] = set()
    braces = parens = 0
    candidate = None           # the identifier before the last file-scope "(" of this declaration
    last_ident = None
    for token in tu.get_tokens(extent=tu.get_extent(str(path), (0, size))):
        kind = token.kind
        if kind == ident:
            if braces == 0 and parens == 0:
                last_ident = token
            continue
        if kind != punct:
            continue
        text = token.spelling
        if text == "(":
            if braces == 0 and parens == 0 and last_ident is not None:
                candidate = last_ident
            parens += 1
        elif text == ")":
            parens = max(0, parens - 1)
        elif text == "{":
            if braces == 0 and parens == 0 and candidate is not None:
                cursor = cindex.Cursor.from_location(tu, candidate.location)
                if (cursor is not None and cursor.kind == cindex.CursorKind.FUNCTION_DECL
                        and cursor.is_definition() and cursor.hash not in seen and from_main_file(cursor)):
                    seen.add(cursor.hash)
                    found.append(cursor)
            braces += 1
        elif text == "}":
            braces = max(0, braces - 1)
            if braces == 0:
                candidate = last_ident = None
        elif text == ";" and braces == 0:
            candidate = last_ident = None
    return found


def from_main_file(cursor: cindex.Cursor) -> bool:
    """Whether ``cursor`` starts in the translation unit's main file (fast: no path strings compared)."""
    return bool(_lib().clang_Location_isFromMainFile(cursor.location))


def evaluate_int(cursor: cindex.Cursor) -> int | None:
    """The integer value of a constant expression (macros folded), descending through casts and parentheses.

    ``(PUCHAR)CMOS_ADDRESS_PORT`` and ``(USHORT)(0x70)`` both give 0x70; a non-constant gives ``None``.
    """
    lib = _lib()
    node = cursor
    for _ in range(16):  # depth guard: casts nest a few levels at most
        result = lib.clang_Cursor_Evaluate(node)
        if result:
            try:
                if lib.clang_EvalResult_getKind(result) == _EVAL_INT:
                    if lib.clang_EvalResult_isUnsignedInt(result):
                        return int(lib.clang_EvalResult_getAsUnsigned(result))
                    return int(lib.clang_EvalResult_getAsLongLong(result))
            finally:
                lib.clang_EvalResult_dispose(result)
        children = list(node.get_children())
        # Pointer casts do not evaluate as integers: step into the one operand of a cast or paren.
        if node.kind in (cindex.CursorKind.CSTYLE_CAST_EXPR, cindex.CursorKind.PAREN_EXPR,
                         cindex.CursorKind.UNEXPOSED_EXPR) and children:
            node = children[-1]
            continue
        return None
    return None


def strip_implicit(cursor: cindex.Cursor) -> cindex.Cursor:
    """The expression under implicit casts and parentheses (``UNEXPOSED_EXPR`` wrappers in cindex)."""
    node = cursor
    while node.kind in (cindex.CursorKind.UNEXPOSED_EXPR, cindex.CursorKind.PAREN_EXPR,
                        cindex.CursorKind.CSTYLE_CAST_EXPR):
        children = list(node.get_children())
        if not children:
            break
        node = children[-1]
    return node


def source_text(cursor: cindex.Cursor, data: bytes) -> str:
    """The exact source text of ``cursor`` from the main file's bytes (one line, spaces collapsed)."""
    start, end = cursor.extent.start.offset, cursor.extent.end.offset
    text = data[start:end].decode("utf-8", "replace")
    return " ".join(text.split())
