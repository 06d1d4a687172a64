"""The project's own facts as data: target kernel ABIs, the Hyper-V interface, the machine platforms.

Both the C side (headers rendered from these files by the templates in ``templates/``) and the machine model
read them, so the two cannot drift apart.  ``load_target(name)`` returns a checked ``Target``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

SPECS_DIR = Path(__file__).resolve().parent
TARGETS_DIR = SPECS_DIR / "targets"

#: Structure sections every target description carries (field tables of {offset, type}).
STRUCT_SECTIONS = (
    "kpcr",
    "kprcb",
    "loader_block",
    "loader_extension",
    "configuration_component_data",
    "acpi_bios_node",
    "ktrap_frame",
)
#: Structure sections a target may carry: the kernel's dispatch tables the HAL fills (slots are fields of type
#: "ptr" with ``kernel_default``: whether the kernel pre-fills the slot; constants ``version``, ``size`` and
#: ``data_import``, the kernel variable's name).
OPTIONAL_STRUCT_SECTIONS = ("hal_dispatch_table", "hal_private_dispatch_table")
FIELD_TYPES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "u128": 16, "ptr": 8, "list": 16, "struct": 0}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_@?$]*$")


class SpecError(ValueError):
    """A description file is missing, unreadable or has a field that is not what it should be."""


@dataclass(frozen=True)
class Field:
    """One structure field the HAL touches."""

    name: str
    offset: int
    type: str
    count: int = 1
    confidence: str = "high"
    #: Dispatch-table slots only: True when the kernel pre-fills the slot with a default, False when the HAL
    #: must fill it; None for ordinary fields.
    kernel_default: bool | None = None


@dataclass(frozen=True)
class Struct:
    """A kernel structure as far as the HAL touches it, plus plain constants stored beside its fields."""

    name: str
    fields: dict[str, Field]
    constants: dict[str, object]

    def slots(self, *, kernel_default: bool | None = None) -> list[Field]:
        """Dispatch-table slots in offset order (fields with ``kernel_default`` set), optionally only those with
        the given ``kernel_default``."""
        return sorted((f for f in self.fields.values() if f.kernel_default is not None
                       and (kernel_default is None or f.kernel_default == kernel_default)),
                      key=lambda f: f.offset)

    def offset(self, field_name: str) -> int:
        """Offset of ``field_name``; raises ``SpecError`` naming the structure when it is not described."""
        try:
            return self.fields[field_name].offset
        except KeyError:
            raise SpecError(f"{self.name}: no field {field_name!r} in the target description") from None


@dataclass(frozen=True)
class Target:
    """A kernel ABI a hal.dll is built for."""

    name: str
    path: Path
    title: str
    kernel_module: str
    exports: tuple[str, ...]
    data_exports: frozenset[str]
    allowed_imports: frozenset[str]
    import_modules: dict[str, str]  # name -> module, for names not imported from the kernel
    data_imports: frozenset[str]
    kernel_required_exports: tuple[str, ...]
    link: dict
    compile: dict
    abi: dict
    irql: dict[str, int]
    vectors: dict[str, int]
    addresses: dict[str, int]
    structs: dict[str, Struct] = field(default_factory=dict)
    gdt: dict[str, int] = field(default_factory=dict)
    bugcheck: dict[str, int] = field(default_factory=dict)

    @property
    def dispatch_tables(self) -> dict[str, Struct]:
        """The kernel dispatch tables this target describes (``OPTIONAL_STRUCT_SECTIONS`` present), by section."""
        return {name: self.structs[name] for name in OPTIONAL_STRUCT_SECTIONS if name in self.structs}

    def module_of(self, name: str) -> str:
        """The module an allowed import is bound to (the kernel unless the description says otherwise)."""
        return self.import_modules.get(name, self.kernel_module)


def _read_toml(path: Path) -> dict:
    """A TOML file's tables; ``SpecError`` naming the file when it cannot be read or parsed."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: {exc}") from None


def bugcheck_names() -> dict[int, str]:
    """Bug-check code → name, from ``specs/bugchecks.toml`` (the codes a HAL raises or causes)."""
    path = SPECS_DIR / "bugchecks.toml"
    entries = _read_toml(path).get("bugcheck", [])
    names: dict[int, str] = {}
    for i, entry in enumerate(entries):
        code, name = entry.get("code"), entry.get("name")
        if not isinstance(code, int) or not isinstance(name, str) or code in names:
            raise SpecError(f"{path}: [[bugcheck]] #{i + 1} needs a unique integer code and a name, got {entry!r}")
        names[code] = name
    return names


@dataclass(frozen=True)
class BugcheckParameter:
    """A parameter-1 value of one of gen2hal's own bug checks (``[[parameter]]`` of ``specs/bugchecks.toml``)."""

    define: str         # its C name
    code: int           # the bug-check code
    bugcheck: str       # the bug-check name
    p1: int
    meaning: str


def bugcheck_parameters() -> dict[str, BugcheckParameter]:
    """gen2hal's own bug-check parameter-1 values by C name, from ``specs/bugchecks.toml``; ``SpecError`` for an
    entry that names an unknown bug check, lacks a field, or gives one code's value two meanings."""
    path = SPECS_DIR / "bugchecks.toml"
    entries = _read_toml(path).get("parameter", [])
    codes = {name: code for code, name in bugcheck_names().items()}
    out: dict[str, BugcheckParameter] = {}
    seen: dict[tuple[int, int], str] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: [[parameter]] #{i + 1}"
        define = _require(entry, "define", str, where)
        name = _require(entry, "bugcheck", str, where)
        p1 = _require(entry, "p1", int, where)
        if name not in codes:
            raise SpecError(f"{where}: bugcheck {name!r} is not a [[bugcheck]] name of this file")
        if define in out or (codes[name], p1) in seen:
            raise SpecError(f"{where}: {define} = {name} {p1:#x} repeats "
                            f"{define if define in out else seen[(codes[name], p1)]}")
        seen[(codes[name], p1)] = define
        out[define] = BugcheckParameter(define, codes[name], name, p1, _require(entry, "meaning", str, where))
    return out


def load_facts(name: str) -> dict:
    """An architectural fact file ``specs/<name>.toml`` (``x64``, ``acpi``): tables of integers, each table with a
    ``source`` string. ``SpecError`` names the file and key of anything else."""
    path = SPECS_DIR / f"{name}.toml"
    data = _read_toml(path)

    def check(table: dict, where: str, top: bool) -> None:
        if top and not isinstance(table.get("source"), str):
            raise SpecError(f"{path}: [{where}] needs a source string naming where its facts come from")
        for key, value in table.items():
            if isinstance(value, dict):
                check(value, f"{where}.{key}", False)
            elif key != "source" and (not isinstance(value, int) or isinstance(value, bool)):
                raise SpecError(f"{path}: [{where}].{key} should be an integer, got {value!r}")

    for key, table in data.items():
        if not isinstance(table, dict):
            raise SpecError(f"{path}: {key!r} should be a table")
        check(table, key, True)
    return data


def target_names() -> list[str]:
    """Names of the targets described in ``specs/targets``, sorted."""
    return sorted(p.stem for p in TARGETS_DIR.glob("*.toml"))


def read_name_list(path: Path) -> tuple[str, ...]:
    """Read a one-name-a-line list (``#`` comments, blank lines ignored); duplicates and bad names are errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read name list: {exc.strerror}") from None
    names: list[str] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not _NAME_RE.match(line):
            raise SpecError(f"{path}:{lineno}: {line!r} is not a symbol name")
        if line in seen:
            raise SpecError(f"{path}:{lineno}: {line!r} listed twice")
        seen.add(line)
        names.append(line)
    return tuple(names)


def _require(table: dict, key: str, kind, where: str):
    if key not in table:
        raise SpecError(f"{where}: missing {key!r}")
    value = table[key]
    if not isinstance(value, kind):
        raise SpecError(f"{where}: {key!r} should be {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
    return value


def _struct(name: str, table: dict, where: str) -> Struct:
    fields: dict[str, Field] = {}
    constants: dict[str, object] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            spot = f"{where} [{name}].{key}"
            offset = _require(value, "offset", int, spot)
            ftype = _require(value, "type", str, spot)
            if ftype not in FIELD_TYPES:
                raise SpecError(f"{spot}: type {ftype!r} is not one of {', '.join(FIELD_TYPES)}")
            count = value.get("count", 1)
            confidence = value.get("confidence", "high")
            if confidence not in ("high", "unsure"):
                raise SpecError(f"{spot}: confidence should be 'high' or 'unsure', got {confidence!r}")
            kernel_default = value.get("kernel_default")
            if kernel_default is not None and not isinstance(kernel_default, bool):
                raise SpecError(f"{spot}: kernel_default should be true or false, got {kernel_default!r}")
            fields[key] = Field(key, offset, ftype, count, confidence, kernel_default)
        else:
            constants[key] = value
    return Struct(name, fields, constants)


def data_imports_of(target_table: dict) -> frozenset[str]:
    """The ``[target].data_imports`` names of a raw description table."""
    return frozenset(target_table.get("data_imports", []))


def load_target(name: str) -> Target:
    """Load and check ``specs/targets/<name>.toml`` and the name lists it refers to."""
    path = TARGETS_DIR / f"{name}.toml"
    if not path.is_file():
        raise SpecError(f"unknown target {name!r}; known targets: {', '.join(target_names())}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: {exc}") from None
    where = str(path)
    tgt = _require(data, "target", dict, where)
    if tgt.get("name") != name:
        raise SpecError(f"{where}: [target].name is {tgt.get('name')!r}, expected {name!r} (the file name)")
    exports = read_name_list(TARGETS_DIR / _require(tgt, "exports", str, where))
    allowed = frozenset(read_name_list(TARGETS_DIR / _require(tgt, "allowed_imports", str, where)))
    required: tuple[str, ...] = ()
    if "kernel_required_exports" in tgt:
        required = read_name_list(TARGETS_DIR / tgt["kernel_required_exports"])
        missing = sorted(set(required) - set(exports))
        if missing:
            raise SpecError(f"{where}: kernel_required_exports not exported: {', '.join(missing)}")
    modules: dict[str, str] = {}
    for module, names in tgt.get("import_modules", {}).items():
        for sym in names:
            modules[sym] = module
    data_exports = frozenset(tgt.get("data_exports", []))
    if not data_exports <= set(exports):
        raise SpecError(f"{where}: data_exports not in the export list: {sorted(data_exports - set(exports))}")
    structs = {}
    for section in STRUCT_SECTIONS:
        structs[section] = _struct(section, _require(data, section, dict, where), where)
    for section in OPTIONAL_STRUCT_SECTIONS:
        if section in data:
            table = _struct(section, _require(data, section, dict, where), where)
            for key in ("version", "size"):
                _require(table.constants, key, int, f"{where} [{section}]")
            _require(table.constants, "data_import", str, f"{where} [{section}]")
            if table.constants["data_import"] not in data_imports_of(tgt):
                raise SpecError(f"{where} [{section}]: data_import {table.constants['data_import']!r} is not in "
                                f"[target].data_imports")
            for slot in table.slots():
                if slot.offset + 8 > table.constants["size"] or slot.offset % 8:
                    raise SpecError(f"{where} [{section}].{slot.name}: offset {slot.offset:#x} is not an aligned "
                                    f"pointer inside size {table.constants['size']:#x}")
            structs[section] = table
    return Target(
        name=name,
        path=path,
        title=_require(tgt, "title", str, where),
        kernel_module=_require(tgt, "kernel_module", str, where),
        exports=exports,
        data_exports=data_exports,
        allowed_imports=allowed,
        import_modules=modules,
        data_imports=frozenset(tgt.get("data_imports", [])),
        kernel_required_exports=required,
        link=_require(data, "link", dict, where),
        compile=_require(data, "compile", dict, where),
        abi=_require(data, "abi", dict, where),
        irql=_require(data, "irql", dict, where),
        vectors=_require(data, "vectors", dict, where),
        addresses=_require(data, "addresses", dict, where),
        structs=structs,
        gdt=data.get("gdt", {}),
        bugcheck=dict(data.get("bugcheck", {})),
    )
