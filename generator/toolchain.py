"""The mingw-w64 toolchain and the flags a hal.dll is built with, in one place.

SConstruct compiles with these flags and the analyzer (libclang) parses with the same defines and include
folders, so what is analyzed is what is built.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from specs import Target

TRIPLE = "x86_64-w64-mingw32"
CC = f"{TRIPLE}-gcc"
DLLTOOL = f"{TRIPLE}-dlltool"
AR = f"{TRIPLE}-ar"

#: Compile flags for kernel-mode code: no red zone (interrupts use the stack), no SSE registers (interrupt
#: stubs then need not save them for HAL code), no stack protector or builtins (no C runtime), one section a
#: function (exact extents in the link map, and unused code dropped).
CFLAGS = [
    "-O2", "-std=gnu11", "-ffreestanding", "-nostdlib", "-mno-red-zone", "-mgeneral-regs-only",
    "-fno-stack-protector", "-fno-builtin", "-fno-common", "-fno-asynchronous-unwind-tables",
    "-ffunction-sections", "-fdata-sections", "-Wall", "-Wextra", "-Werror",
]
#: Defines every translation unit of a HAL sees, before the target's own.
COMMON_DEFINES = ["_AMD64_", "_WIN64", "_NTHALDLL_", "_NTHAL_", "_NTSYSTEM_"]


class ToolchainError(RuntimeError):
    """The cross toolchain is missing or incomplete."""


def require_tools() -> None:
    """Fail with an actionable message when the mingw-w64 tools are not installed."""
    missing = [tool for tool in (CC, DLLTOOL) if shutil.which(tool) is None]
    if missing:
        raise ToolchainError(
            f"{', '.join(missing)} not found: install Debian's gcc-mingw-w64-x86-64 (scripts/setup.sh does)")


def sysroot_include() -> Path:
    """The mingw-w64 headers folder (``include``; the DDK headers are in its ``ddk`` subfolder)."""
    gcc = shutil.which(CC)
    if gcc is None:
        raise ToolchainError(f"{CC} not found: install Debian's gcc-mingw-w64-x86-64 (scripts/setup.sh does)")
    include = Path(gcc).resolve().parent.parent / TRIPLE / "include"
    if not (include / "ddk" / "ntddk.h").is_file():
        raise ToolchainError(f"mingw-w64 DDK headers not found in {include / 'ddk'} (package mingw-w64-x86-64-dev)")
    return include


def defines(target: Target) -> list[str]:
    """All preprocessor defines of a HAL translation unit for ``target``."""
    return COMMON_DEFINES + list(target.compile.get("defines", []))


def include_dirs(target_include: Path, hal_include: Path) -> list[Path]:
    """Include folders in search order: the rendered target header, the HAL's own, the DDK."""
    return [target_include, hal_include, sysroot_include() / "ddk"]


def link_flags(target: Target, entry: str | None = None) -> list[str]:
    """Linker flags for a native-subsystem, timestamp-free hal.dll of ``target`` (``entry`` overrides the
    target's entry symbol, for a unit that states its own)."""
    link = dict(target.link)
    if entry:
        link["entry"] = entry
    return [
        "-shared", "-nostdlib",
        f"-Wl,--subsystem,{link['subsystem']}",
        f"-Wl,--image-base,0x{link['image_base']:X}",
        f"-Wl,--entry,{link['entry']}",
        "-Wl,--no-insert-timestamp",
        "-Wl,--file-alignment,0x200", "-Wl,--section-alignment,0x1000",
        "-Wl,--gc-sections",
        "-Wl,--disable-auto-import", "-Wl,--disable-runtime-pseudo-reloc",
    ]
