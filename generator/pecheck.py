"""Validate a built hal.dll against its target: the checks a kernel loader (and a careful reviewer) would make.

``validate(path, target)`` returns a ``Validation`` whose ``problems`` list is empty when the image is an AMD64
PE32+ native-subsystem DLL with an entry point, exports exactly the target's names, imports only names (and
modules) the target allows, carries a valid checksum and no timestamps.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pefile

from specs import Target

IMAGE_FILE_MACHINE_AMD64 = 0x8664
PE32_PLUS_MAGIC = 0x20B
IMAGE_FILE_DLL = 0x2000
IMAGE_SUBSYSTEM_NATIVE = 1


@dataclass
class Validation:
    """What was checked in one image and what failed."""

    path: str
    target: str
    size: int = 0
    exports: list[str] = field(default_factory=list)
    imports: dict[str, list[str]] = field(default_factory=dict)
    entry_point_rva: int = 0
    checksum: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return not self.problems

    def summary(self) -> str:
        """One line: verdict, size and counts."""
        n_imports = sum(len(v) for v in self.imports.values())
        state = "valid" if self.ok else f"INVALID ({len(self.problems)} problems)"
        return (f"{self.path}: {state}; {self.size} bytes, {len(self.exports)} exports, {n_imports} imports "
                f"from {', '.join(sorted(self.imports)) or 'no module'}, checksum 0x{self.checksum:08X}")

    def to_json(self) -> str:
        """The validation as stable JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"


def _decode(name) -> str:
    return name.decode("ascii", "replace") if isinstance(name, bytes) else str(name)


def validate(path: str | Path, target: Target, expected_exports: set[str] | None = None) -> Validation:
    """Check the image at ``path`` against ``target``; never raises for a bad image, reports it instead.

    ``expected_exports`` replaces the target's export list (a unit whose exports come from its own ``.spec``).
    """
    path = Path(path)
    result = Validation(path=str(path), target=target.name)
    try:
        data = path.read_bytes()
    except OSError as exc:
        result.problems.append(f"cannot read: {exc.strerror}")
        return result
    result.size = len(data)
    try:
        pe = pefile.PE(data=data, fast_load=False)
    except pefile.PEFormatError as exc:
        result.problems.append(f"not a PE image: {exc}")
        return result
    problems = result.problems
    fh, oh = pe.FILE_HEADER, pe.OPTIONAL_HEADER
    if fh.Machine != IMAGE_FILE_MACHINE_AMD64:
        problems.append(f"machine is 0x{fh.Machine:04X}, expected AMD64 (0x8664)")
    if oh.Magic != PE32_PLUS_MAGIC:
        problems.append(f"optional header magic 0x{oh.Magic:X}, expected PE32+ (0x20B)")
    if not fh.Characteristics & IMAGE_FILE_DLL:
        problems.append("not a DLL (IMAGE_FILE_DLL characteristic clear)")
    if oh.Subsystem != IMAGE_SUBSYSTEM_NATIVE:
        problems.append(f"subsystem {oh.Subsystem}, expected native (1)")
    result.entry_point_rva = oh.AddressOfEntryPoint
    if oh.AddressOfEntryPoint == 0:
        problems.append("entry point is 0")
    if fh.TimeDateStamp != 0:
        problems.append(f"header timestamp 0x{fh.TimeDateStamp:08X}, expected 0 (reproducible build)")

    exports: list[str] = []
    if hasattr(pe, "DIRECTORY_ENTRY_EXPORT"):
        exp = pe.DIRECTORY_ENTRY_EXPORT
        if exp.struct.TimeDateStamp != 0:
            problems.append(f"export directory timestamp 0x{exp.struct.TimeDateStamp:08X}, expected 0")
        for sym in exp.symbols:
            if sym.name is None:
                problems.append(f"export by ordinal only: {sym.ordinal}")
            else:
                exports.append(_decode(sym.name))
    result.exports = sorted(exports)
    expected = set(expected_exports) if expected_exports is not None else set(target.exports)
    missing = sorted(expected - set(exports))
    extra = sorted(set(exports) - expected)
    if missing:
        problems.append(f"missing exports ({len(missing)}): {', '.join(missing)}")
    if extra:
        problems.append(f"exports not in the expected list ({len(extra)}): {', '.join(extra)}")

    allowed_modules = {target.kernel_module.lower()} | {m.lower() for m in target.import_modules.values()}
    for entry in getattr(pe, "DIRECTORY_ENTRY_IMPORT", []):
        module = _decode(entry.dll)
        names = []
        for imp in entry.imports:
            if imp.name is None:
                problems.append(f"import by ordinal from {module}: {imp.ordinal}")
                continue
            name = _decode(imp.name)
            names.append(name)
            if name not in target.allowed_imports:
                problems.append(f"import {module}!{name} is not allowed for {target.name}")
            elif target.module_of(name).lower() != module.lower():
                problems.append(f"import {name} comes from {module}, expected {target.module_of(name)}")
        if module.lower() not in allowed_modules:
            problems.append(f"imports from module {module}, allowed: {', '.join(sorted(allowed_modules))}")
        result.imports[module] = sorted(names)

    result.checksum = oh.CheckSum
    if oh.CheckSum == 0:
        problems.append("PE checksum is 0")
    elif not pe.verify_checksum():
        problems.append(f"PE checksum 0x{oh.CheckSum:08X} is wrong (expected 0x{pe.generate_checksum():08X})")
    pe.close()
    return result
