"""Loader for ``specs/hyperv.toml``, the project's one description of the Hyper-V guest interface.

The same file feeds the machine model (``gen2sim/hyperv.py``) and the C side (a Jinja2 template renders a HAL
header from it), so the model never carries a second copy of an MSR number or a CPUID bit.  This module turns
the TOML into small frozen records with lookups by name::

    spec = load_hyperv_spec()
    spec.msr("STIMER0_CONFIG").number          # 0x400000B0
    spec.feature("synic").clears               # (CpuidBit(name='AccessSynicRegs', leaf=0x40000003, ...),)
    spec.layout("STIMER_CONFIG").field("Sintx").get(value)
    spec.default_cpuid()[0x40000003]           # (eax, ebx, ecx, edx) the model presents by default

The file is the project's own data and lives at ``<repo>/specs/hyperv.toml``; it is found relative to this
package, so nothing outside the repository is needed.  Loading validates cross references (an MSR's ``requires``
must name a known CPUID bit, a feature's ``clears`` must agree with the bit tables, ...) and raises
``ModelError`` when the file contradicts itself.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from .errors import ModelError

#: Where the project keeps the description (relative to this package, never to the working directory).
SPEC_PATH = Path(__file__).resolve().parent.parent / "specs" / "hyperv.toml"

#: CPUID output registers in the order ``cpuid()`` returns them.
REGISTERS = ("eax", "ebx", "ecx", "edx")

#: The tables of CPUID bits, in file order; the value is the group name recorded on each bit.
_BIT_TABLES = (
    ("privilege_bits", "privilege"),
    ("feature_bits", "feature"),
    ("misc_bits", "misc"),
    ("recommendation_bits", "recommendation"),
    ("hardware_feature_bits", "hardware_feature"),
)


@dataclass(frozen=True)
class CpuidBit:
    """One named CPUID bit (a privilege, feature, recommendation, ... or the hypervisor-present bit)."""

    name: str
    leaf: int
    register: str
    bit: int
    group: str
    meaning: str = ""
    grants: tuple[str, ...] = ()
    source: str = ""

    @property
    def mask(self) -> int:
        """The bit as a mask within its 32-bit register."""
        return 1 << self.bit

    @property
    def register_index(self) -> int:
        """Position of the register in a ``(eax, ebx, ecx, edx)`` tuple."""
        return REGISTERS.index(self.register)


@dataclass(frozen=True)
class Field:
    """A bit field of a 64-bit value: ``width`` bits starting at ``lsb``."""

    name: str
    lsb: int
    width: int
    meaning: str = ""
    reserved: str | None = None  # "preserve" (RsvdP), "zero" (RsvdZ) or None

    @property
    def mask(self) -> int:
        """The field's bits in place."""
        return ((1 << self.width) - 1) << self.lsb

    def get(self, value: int) -> int:
        """Extract the field from ``value``."""
        return (value >> self.lsb) & ((1 << self.width) - 1)

    def put(self, value: int, field_value: int) -> int:
        """Return ``value`` with the field replaced by ``field_value`` (which must fit)."""
        if field_value >> self.width:
            raise ModelError(f"value {field_value:#x} does not fit field {self.name} ({self.width} bits)")
        return (value & ~self.mask) | (field_value << self.lsb)


@dataclass(frozen=True)
class Layout:
    """The bit fields of one kind of 64-bit value (an MSR, the hypercall input value, ...)."""

    name: str
    fields: tuple[Field, ...]
    source: str = ""

    def field(self, name: str) -> Field:
        """The field called ``name``."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"layout {self.name} has no field {name}")

    @property
    def reserved_zero_mask(self) -> int:
        """Bits marked RsvdZ: software must write them as zero."""
        return _or_masks(f.mask for f in self.fields if f.reserved == "zero")

    @property
    def reserved_preserve_mask(self) -> int:
        """Bits marked RsvdP: software must preserve them on writes."""
        return _or_masks(f.mask for f in self.fields if f.reserved == "preserve")


@dataclass(frozen=True)
class Member:
    """One member of a guest-memory structure."""

    name: str
    offset: int
    size: int
    type: str
    count: int = 1
    meaning: str = ""


@dataclass(frozen=True)
class Structure:
    """The byte layout of a structure the hypervisor and guest share in guest memory."""

    name: str
    size: int
    members: tuple[Member, ...]
    source: str = ""

    def member(self, name: str) -> Member:
        """The member called ``name``."""
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(f"structure {self.name} has no member {name}")


@dataclass(frozen=True)
class Msr:
    """One synthetic MSR: number, access, and the CPUID bits that must all be set for it to exist."""

    name: str
    number: int
    access: str  # "rw" | "ro" | "wo"
    scope: str  # "partition" | "vp"
    requires: tuple[str, ...]
    reset: int
    layout: str | None
    modelled: bool
    on_read: str | None  # for "wo": "zero" or "gp"
    meaning: str
    source: str

    @property
    def readable(self) -> bool:
        """A read returns a value (``ro``/``rw``, or a write-only MSR that reads as zero)."""
        return self.access != "wo" or self.on_read == "zero"

    @property
    def writable(self) -> bool:
        """A write is accepted (subject to the register's own rules)."""
        return self.access != "ro"


@dataclass(frozen=True)
class Feature:
    """A name ``gen2sim boot --hv-clear`` accepts and the CPUID bits clearing it removes."""

    name: str
    summary: str
    clears: tuple[CpuidBit, ...]
    source: str


@dataclass(frozen=True)
class Hypercall:
    """A hypercall code known to the description (``modelled`` ones are implemented by gen2sim)."""

    name: str
    code: int
    kind: str
    modelled: bool
    source: str


@dataclass(frozen=True)
class HvSpec:
    """The loaded description; build it with ``load_hyperv_spec()``."""

    raw: dict[str, Any]
    path: Path
    cpuid_bits: dict[str, CpuidBit]
    msrs: tuple[Msr, ...]
    layouts: dict[str, Layout]
    structures: dict[str, Structure]
    features: tuple[Feature, ...]
    hypercalls: tuple[Hypercall, ...]
    _msr_by_name: dict[str, Msr] = field(repr=False)
    _msr_by_number: dict[int, Msr] = field(repr=False)

    # -- lookups -------------------------------------------------------------------------------------------
    def msr(self, name: str) -> Msr:
        """The MSR called ``name`` (without the ``HV_X64_MSR_`` prefix)."""
        try:
            return self._msr_by_name[name]
        except KeyError:
            raise KeyError(f"no synthetic MSR named {name}") from None

    def msr_at(self, number: int) -> Msr | None:
        """The MSR with number ``number``, or ``None`` when the description has none there."""
        return self._msr_by_number.get(number)

    def feature(self, name: str) -> Feature:
        """The ``--hv-clear`` feature called ``name``."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"no Hyper-V feature named {name}; known: {', '.join(self.feature_names())}")

    def feature_names(self) -> tuple[str, ...]:
        """Every name ``--hv-clear`` accepts, in file order."""
        return tuple(f.name for f in self.features)

    def cpuid_bit(self, name: str) -> CpuidBit:
        """The CPUID bit called ``name`` (privilege, feature, misc, recommendation, hardware feature)."""
        try:
            return self.cpuid_bits[name]
        except KeyError:
            raise KeyError(f"no CPUID bit named {name}") from None

    def layout(self, name: str) -> Layout:
        """The bit layout called ``name``."""
        return self.layouts[name]

    def structure(self, name: str) -> Structure:
        """The guest-memory structure called ``name``."""
        return self.structures[name]

    def message_type(self, name: str) -> int:
        """The value of the SynIC message type called ``name``."""
        return _named_value(self.raw["message_types"], name, "message type")

    def hv_status(self, name: str) -> int:
        """The value of the HV_STATUS code called ``name``."""
        return _named_value(self.raw["hv_status"], name, "HV_STATUS")

    def hypercall(self, name: str) -> Hypercall:
        """The hypercall called ``name``."""
        for h in self.hypercalls:
            if h.name == name:
                return h
        raise KeyError(f"no hypercall named {name}")

    def hypercall_by_code(self, code: int) -> Hypercall | None:
        """The hypercall with call code ``code``, or ``None``."""
        for h in self.hypercalls:
            if h.code == code:
                return h
        return None

    @property
    def defaults(self) -> dict[str, Any]:
        """The ``[defaults]`` table: model defaults, not facts."""
        return self.raw["defaults"]

    def section(self, name: str) -> dict[str, Any]:
        """A plain table of the file, e.g. ``section("synic")``."""
        return self.raw[name]

    # -- the CPUID the model presents ------------------------------------------------------------------------
    def default_cpuid(self) -> dict[int, tuple[int, int, int, int]]:
        """``{leaf: (eax, ebx, ecx, edx)}`` for leaf 1 (hypervisor-present bit only) and 0x40000000..max leaf."""
        d = self.defaults
        sig = self.raw["signatures"]
        ver = d["version"]

        def mask_of(names: Iterable[str], register: str, leaf: int) -> int:
            value = 0
            for n in names:
                b = self.cpuid_bit(n)
                if b.register == register and b.leaf == leaf:
                    value |= b.mask
            return value

        privs = d["privileges"]
        present = self.cpuid_bits["HypervisorPresent"]
        leaves: dict[int, tuple[int, int, int, int]] = {
            0x1: (0, 0, present.mask, 0),
            0x40000000: (d["max_leaf"], sig["vendor_ebx"], sig["vendor_ecx"], sig["vendor_edx"]),
            0x40000001: (sig["interface_eax"], 0, 0, 0),
            0x40000002: (
                ver["build_number"],
                (ver["major_version"] << 16) | ver["minor_version"],
                ver["service_pack"],
                (ver["service_branch"] << 24) | ver["service_number"],
            ),
            0x40000003: (
                mask_of(privs, "eax", 0x40000003),
                mask_of(privs, "ebx", 0x40000003),
                mask_of(d["misc"], "ecx", 0x40000003),
                mask_of(d["features"], "edx", 0x40000003),
            ),
            0x40000004: (
                mask_of(d["recommendations"], "eax", 0x40000004),
                d["spin_retry_count"],
                d["implemented_physical_address_bits"],
                0,
            ),
            0x40000005: (d["max_virtual_processors"], d["max_logical_processors"], d["max_interrupt_vectors"], 0),
            0x40000006: (mask_of(d["hardware_features"], "eax", 0x40000006), 0, 0, 0),
        }
        return {leaf: regs for leaf, regs in leaves.items() if leaf == 0x1 or leaf <= d["max_leaf"]}


# ------------------------------------------------------------------------------------------------- loading
def _or_masks(masks: Iterable[int]) -> int:
    value = 0
    for m in masks:
        value |= m
    return value


def _named_value(entries: list[dict], name: str, what: str) -> int:
    for e in entries:
        if e["name"] == name:
            return e["value"]
    raise KeyError(f"no {what} named {name}")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ModelError(f"specs/hyperv.toml: {message}")


def _build(raw: dict[str, Any], path: Path) -> HvSpec:
    # CPUID bits: one namespace across all tables, so an MSR's `requires` is unambiguous.
    bits: dict[str, CpuidBit] = {}
    hp = raw["hypervisor_present"]
    bits[hp["name"]] = CpuidBit(hp["name"], hp["leaf"], hp["register"], hp["bit"], "hypervisor_present",
                                hp.get("meaning", ""), (), hp["source"])
    for table, group in _BIT_TABLES:
        for e in raw.get(table, []):
            _check(e["name"] not in bits, f"CPUID bit name {e['name']} is used twice")
            _check(e["register"] in REGISTERS and 0 <= e["bit"] < 32, f"bad register/bit for {e['name']}")
            bits[e["name"]] = CpuidBit(e["name"], e["leaf"], e["register"], e["bit"], group, e.get("meaning", ""),
                                       tuple(e.get("grants", ())), e["source"])
    seen_pos: dict[tuple[int, str, int], str] = {}
    for b in bits.values():
        key = (b.leaf, b.register, b.bit)
        _check(key not in seen_pos, f"{b.name} and {seen_pos.get(key)} share one CPUID bit")
        seen_pos[key] = b.name

    layouts: dict[str, Layout] = {}
    for e in raw.get("layouts", []):
        fields = tuple(Field(f["name"], f["lsb"], f["width"], f.get("meaning", ""), f.get("reserved"))
                       for f in e["fields"])
        covered = 0
        for f in fields:
            _check(f.lsb + f.width <= 64, f"layout {e['name']}.{f.name} exceeds 64 bits")
            _check(not covered & f.mask, f"layout {e['name']}.{f.name} overlaps another field")
            _check(f.reserved in (None, "preserve", "zero"), f"layout {e['name']}.{f.name}: bad reserved kind")
            covered |= f.mask
        layouts[e["name"]] = Layout(e["name"], fields, e["source"])

    structures: dict[str, Structure] = {}
    for e in raw.get("structures", []):
        members = tuple(Member(m["name"], m["offset"], m["size"], m["type"], m.get("count", 1), m.get("meaning", ""))
                        for m in e["members"])
        for m in members:
            _check(m.offset + m.size * m.count <= e["size"], f"structure {e['name']}.{m.name} exceeds the size")
        structures[e["name"]] = Structure(e["name"], e["size"], members, e["source"])

    msrs: list[Msr] = []
    by_name: dict[str, Msr] = {}
    by_number: dict[int, Msr] = {}
    for e in raw["msrs"]:
        m = Msr(e["name"], e["number"], e["access"], e["scope"], tuple(e["requires"]), e.get("reset", 0),
                e.get("layout"), e.get("modelled", True), e.get("on_read"), e.get("meaning", ""), e["source"])
        _check(m.name not in by_name, f"MSR {m.name} listed twice")
        _check(m.number not in by_number, f"MSR number {m.number:#x} listed twice")
        _check(m.access in ("rw", "ro", "wo"), f"MSR {m.name}: bad access {m.access}")
        _check(m.access != "wo" or m.on_read in ("zero", "gp"), f"MSR {m.name}: write-only needs on_read")
        _check(m.scope in ("partition", "vp"), f"MSR {m.name}: bad scope")
        _check(bool(m.requires), f"MSR {m.name}: no precondition")
        for r in m.requires:
            _check(r in bits, f"MSR {m.name} requires unknown CPUID bit {r}")
        _check(m.layout is None or m.layout in layouts, f"MSR {m.name}: unknown layout {m.layout}")
        msrs.append(m)
        by_name[m.name] = m
        by_number[m.number] = m
    for b in bits.values():
        for g in b.grants:
            _check(g in by_name, f"{b.name} grants unknown MSR {g}")
            _check(b.name in by_name[g].requires, f"{b.name} grants {g} but {g} does not require it")

    features: list[Feature] = []
    for e in raw.get("features", []):
        clears = []
        for c in e["clears"]:
            _check(c["name"] in bits, f"feature {e['name']} clears unknown bit {c['name']}")
            b = bits[c["name"]]
            _check((b.leaf, b.register, b.bit) == (c["leaf"], c["register"], c["bit"]),
                   f"feature {e['name']}: {c['name']} is not leaf {c['leaf']:#x} {c['register']} bit {c['bit']}")
            clears.append(b)
        _check(all(f.name != e["name"] for f in features), f"feature {e['name']} listed twice")
        features.append(Feature(e["name"], e.get("summary", ""), tuple(clears), e["source"]))

    hypercalls = tuple(Hypercall(e["name"], e["code"], e["kind"], e.get("modelled", False), e["source"])
                       for e in raw.get("hypercalls", []))

    d = raw["defaults"]
    for key, group in (("privileges", "privilege"), ("features", "feature"), ("misc", "misc"),
                       ("recommendations", "recommendation"), ("hardware_features", "hardware_feature")):
        for n in d[key]:
            _check(n in bits and bits[n].group == group, f"defaults.{key}: {n} is not a {group} bit")
    crash = layouts["CRASH_CTL"]
    for n in d["crash_ctl_supported"]:
        crash.field(n)  # raises KeyError for an unknown name
    _check(d["max_leaf"] >= raw["signatures"]["min_max_leaf"], "defaults.max_leaf below the TLFS minimum")

    msrs.sort(key=lambda m: m.number)
    return HvSpec(raw, path, bits, tuple(msrs), layouts, structures, tuple(features), hypercalls, by_name, by_number)


@lru_cache(maxsize=4)
def _load_cached(path: str) -> HvSpec:
    p = Path(path)
    with p.open("rb") as fh:
        raw = tomllib.load(fh)
    return _build(raw, p)


def load_hyperv_spec(path: str | Path | None = None) -> HvSpec:
    """Load and validate the Hyper-V description (``specs/hyperv.toml`` of this repository by default).

    The result is immutable and cached per path, so every model instance shares one copy.
    """
    return _load_cached(str(Path(path).resolve() if path is not None else SPEC_PATH))
