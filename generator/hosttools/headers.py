"""All build-time headers of a ReactOS tree, made once into a content-addressed cache folder.

``ensure_generated(tree)`` returns a folder laid out like the generated part of a ReactOS build folder::

    sdk/include/ddk/{wdm,ntddk,ntifs}.h          hpp, from sdk/include/xdk (the list: xdk/CMakeLists.txt)
    sdk/include/psdk/{devioctl,ntdef,winnt}.h
    sdk/include/reactos/mc/bugcodes.h            the message compiler, from sdk/include/reactos/mc/bugcodes.mc
    sdk/include/asm/ksamd64.inc                  geninc, from sdk/include/asm/genincdata.c compiled with mingw gcc

The folder's name is a hash of every input file's bytes (the xdk templates, ``bugcodes.mc``, ``genincdata.c``
and every header the compiler read for it), the tool version and the compiler's version, so a second call with
unchanged inputs only re-hashes them. Which headers ``genincdata.c`` reads is known only after compiling it:
it is recorded per hash of the other inputs (``deps/``), like a compiler cache's direct mode. Folders are built
under a temporary name and renamed into place; nothing is written into the tree.

``reactos_global_args`` is the one place that states the include folders and defines ReactOS's top-level CMake
gives every target; the build-unit reader imports it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from generator.hosttools import HostToolError, geninc, hpp, mc

#: Bump when any tool's output for the same inputs changes: it is part of every cache key.
TOOL_VERSION = "gen2hal-hosttools 1"
COMPILER = "x86_64-w64-mingw32-gcc"

#: Undefines of sdk/cmake/gcc.cmake for amd64 (``-U_X86_ -UWIN32``); mingw gcc predefines WIN32.
GLOBAL_UNDEFINES = ("_X86_", "WIN32")
#: Compiler flags of sdk/cmake/gcc.cmake that shape declarations and layouts ("Compiler Core", long double).
GLOBAL_GCC_FLAGS = ("-nostdinc", "-fms-extensions", "-fno-strict-aliasing", "-fno-common", "-mlong-double-64")

# arch -> the include file sdk/include/asm/CMakeLists.txt makes for it
_ASM_OUTPUT = {"amd64": "ksamd64.inc"}
_BUGCODES_MC = Path("sdk/include/reactos/mc/bugcodes.mc")
_BUGCODES_OUT = Path("sdk/include/reactos/mc/bugcodes.h")
_XDK = Path("sdk/include/xdk")
_GENINCDATA = Path("sdk/include/asm/genincdata.c")


def reactos_global_args(tree: Path, generated: Path) -> tuple[list[Path], list[str]]:
    """Include folders (in ``-I`` order) and defines every ReactOS amd64 target gets from the top-level build.

    Source: ReactOS's top-level ``CMakeLists.txt`` (the cross-compiling branch's ``include_directories`` and
    ``add_definitions``; read at upstream master of 2025, whose lists match what the 2024 subset needs:
    ``sdk/lib/crt/stdlib/rand_s.c`` tests the ``DLL_EXPORT_VERSION`` macro and ``printf/swprintf.c`` compiles
    only with ``_CRT_NON_CONFORMING_SWPRINTFS``) and ``sdk/cmake/gcc.cmake`` (``_USE_PSEH3=1``,
    ``_GLIBCXX_HAVE_BROKEN_VSWPRINTF``; its ``-U_X86_ -UWIN32`` are :data:`GLOBAL_UNDEFINES`, its flags
    :data:`GLOBAL_GCC_FLAGS`). Source folders absent from ``tree`` (``dxsdk`` in a subset, ``winrt`` and
    ``vcruntime`` before they existed) are left out, as is the generated ``dxsdk`` folder this tool does not
    make. ``DBG=0`` is the release configuration; ``DLL_EXPORT_VERSION`` is config.cmake's 0x502. ``WIN64`` and
    ``WIN32`` need no define: mingw gcc and clang's mingw target predefine them.
    """
    source = ["sdk/include", "sdk/include/psdk", "sdk/include/dxsdk", "sdk/include/winrt"]
    built = ["sdk/include", "sdk/include/psdk", "sdk/include/dxsdk", "sdk/include/ddk", "sdk/include/reactos",
             "sdk/include/reactos/mc"]
    tail = ["sdk/include/crt", "sdk/include/vcruntime", "sdk/include/ddk", "sdk/include/ndk",
            "sdk/include/reactos", "sdk/include/reactos/libs"]
    dirs = [tree / d for d in source if (tree / d).is_dir()]
    dirs += [generated / d for d in built if d != "sdk/include/dxsdk"]
    dirs += [tree / d for d in tail if (tree / d).is_dir()]
    defines = [
        "__REACTOS__", "_CRT_NON_CONFORMING_SWPRINTFS", "DBG=0",
        "WINVER=0x502", "_WIN32_IE=0x600", "_WIN32_WINNT=0x502", "_WIN32_WINDOWS=0x502", "_SETUPAPI_VER=0x502",
        "MINGW_HAS_SECURE_API=1", "D3D_UMD_INTERFACE_VERSION=0x000C", "DXGKDDI_INTERFACE_VERSION=0x1052",
        "DLL_EXPORT_VERSION=0x502",
        "_M_AMD64", "_AMD64_", "__x86_64__", "_WIN64",
        "_NEW_DELETE_OPERATORS_", "USE_COMPILER_EXCEPTIONS",
        "_USE_PSEH3=1", "_GLIBCXX_HAVE_BROKEN_VSWPRINTF",
    ]
    return dirs, defines


def default_cache_root() -> Path:
    """``$GEN2HAL_CACHE``, else ``$XDG_CACHE_HOME/gen2hal/reactos-generated``, else ``~/.cache/...``."""
    if os.environ.get("GEN2HAL_CACHE"):
        return Path(os.environ["GEN2HAL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gen2hal" / "reactos-generated"


def ensure_generated(tree: Path, cache_root: Path | None = None, *, arch: str = "amd64") -> Path:
    """Make (or find) every build-time header of the ReactOS tree ``tree``; returns the generated folder."""
    if arch not in _ASM_OUTPUT:
        raise HostToolError(f"arch {arch!r} is not supported (supported: {', '.join(_ASM_OUTPUT)})")
    tree = Path(tree).resolve()
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    static = _static_inputs(tree)
    stage = _digest([("tool", TOOL_VERSION.encode()), ("arch", arch.encode()), ("cc", _compiler_id().encode())]
                    + [(str(rel), _file_digest(tree / rel)) for rel in static])
    deps_record = root / "deps" / f"{stage}.json"
    if deps_record.is_file():
        try:
            deps = json.loads(deps_record.read_text(encoding="utf-8"))["files"]
            folder = root / _full_key(stage, tree, deps)
        except (OSError, ValueError, KeyError, HostToolError):
            folder = None          # a damaged record, or a recorded header is gone: rebuild below
        if folder is not None and (folder / "manifest.json").is_file():
            return folder
    return _build(tree, root, stage, static, arch)


def _static_inputs(tree: Path) -> list[Path]:
    """Inputs known before compiling: the whole xdk folder, ``bugcodes.mc``, ``genincdata.c`` (tree-relative)."""
    needed = [_XDK / "CMakeLists.txt", _BUGCODES_MC, _GENINCDATA]
    for rel in needed:
        if not (tree / rel).is_file():
            raise HostToolError(f"{tree / rel}: missing (is {tree} a ReactOS source tree?)")
    xdk = sorted(p.relative_to(tree) for p in (tree / _XDK).rglob("*") if p.is_file())
    return sorted(set(xdk) | set(needed))


def _build(tree: Path, root: Path, stage: str, static: list[Path], arch: str) -> Path:
    """Generate everything into a temporary folder under ``root``, then rename it to its content key."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    os.chmod(tmp, 0o755)          # mkdtemp makes it private; the cache is an ordinary folder
    try:
        for template, output in hpp.xdk_headers(tree / _XDK / "CMakeLists.txt"):
            result = hpp.preprocess(tree / _XDK / template)
            _write(tmp / output, result.text)
        _write(tmp / _BUGCODES_OUT, mc.generate_header(tree / _BUGCODES_MC))
        deps = _make_asm_include(tree, tmp, arch)
        key = _full_key(stage, tree, deps)
        manifest = {"tool": TOOL_VERSION, "arch": arch, "compiler": _compiler_id(), "key": key,
                    "inputs": sorted({str(p) for p in static} | set(deps))}
        _write(tmp / "manifest.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
        folder = root / key
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "manifest.json").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)   # another process made the same folder first
        _write_atomic(root / "deps" / f"{stage}.json",
                      (json.dumps({"files": deps}, indent=1) + "\n").encode())
        return folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _make_asm_include(tree: Path, generated: Path, arch: str) -> list[str]:
    """Compile ``genincdata.c`` against the new headers and write the include file; returns its input files.

    Inputs are tree-relative paths (absolute for files outside the tree); the generated headers are left out,
    as they follow from the other inputs.
    """
    includes, defines = reactos_global_args(tree, generated)
    flags = [*GLOBAL_GCC_FLAGS, *(f"-U{name}" for name in GLOBAL_UNDEFINES)]
    obj = generated / ".genincdata.o"
    try:
        read = geninc.compile_object(tree / _GENINCDATA, obj, compiler=COMPILER, include_dirs=includes,
                                     defines=defines, flags=flags)
        records = geninc.asmdef_records(obj.read_bytes(), f"{obj} (compiled from {tree / _GENINCDATA})")
    finally:
        obj.unlink(missing_ok=True)
    _write(generated / "sdk/include/asm" / _ASM_OUTPUT[arch], geninc.render_inc(records))
    deps = set()
    for path in read:
        path = path if path.is_absolute() else (tree / path)
        path = Path(os.path.normpath(path))
        if path.is_relative_to(generated):
            continue
        deps.add(str(path.relative_to(tree)) if path.is_relative_to(tree) else str(path))
    return sorted(deps)


def _full_key(stage: str, tree: Path, deps: list[str]) -> str:
    """The folder name: the static inputs' hash plus every compiler-read file's bytes."""
    return _digest([("stage", stage.encode())] + [(rel, _file_digest(tree / rel)) for rel in deps])[:40]


def _digest(items: list[tuple[str, bytes]]) -> str:
    h = hashlib.sha256()
    for name, value in items:
        h.update(name.encode("utf-8", "surrogateescape") + b"\0" + value + b"\0")
    return h.hexdigest()


def _file_digest(path: Path) -> bytes:
    try:
        return hashlib.sha256(path.read_bytes()).digest()
    except OSError as exc:
        raise HostToolError(f"{path}: cannot read input: {exc}") from exc


@functools.lru_cache(maxsize=1)
def _compiler_id() -> str:
    """The compiler's version and target: outputs of another compiler version get another key."""
    try:
        version = subprocess.run([COMPILER, "-dumpfullversion"], capture_output=True, text=True, check=True)
        machine = subprocess.run([COMPILER, "-dumpmachine"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise HostToolError(f"{COMPILER} not usable ({exc}): install Debian's gcc-mingw-w64-x86-64") from exc
    return f"{machine.stdout.strip()} {version.stdout.strip()}"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
