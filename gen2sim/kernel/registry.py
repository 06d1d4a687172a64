"""A small in-model registry: the keys a HAL reads at boot, as the target's kernel presents them then.

The keys and values come from ``specs/targets/<target>/registry.toml`` (each with its source); a key not listed
does not exist, so the HAL sees STATUS_OBJECT_NAME_NOT_FOUND as on a fresh installation.  The kernel-built
volatile keys are added here: ``HARDWARE\\DESCRIPTION\\System\\MultiFunctionAdapter\\<n>`` for each
MultiFunctionAdapter of the loader's configuration tree (``Identifier``, ``Configuration Data`` as a
REG_FULL_RESOURCE_DESCRIPTOR), as the kernel's hardware-tree import does.  Names compare case-insensitively.
"""

from __future__ import annotations

import struct
import tomllib
from dataclasses import dataclass, field

from specs import TARGETS_DIR, SpecError

REG_NONE, REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD = 0, 1, 2, 3, 4
REG_MULTI_SZ, REG_RESOURCE_LIST, REG_FULL_RESOURCE_DESCRIPTOR, REG_QWORD = 7, 8, 9, 11
TYPE_NAMES = {"REG_NONE": REG_NONE, "REG_SZ": REG_SZ, "REG_EXPAND_SZ": REG_EXPAND_SZ, "REG_BINARY": REG_BINARY,
              "REG_DWORD": REG_DWORD, "REG_MULTI_SZ": REG_MULTI_SZ, "REG_QWORD": REG_QWORD}


@dataclass
class Key:
    """One key: its full path, values (name -> (type, data)) and subkeys, in creation order."""

    path: str
    values: dict[str, tuple[str, int, bytes]] = field(default_factory=dict)  # lower name -> (name, type, data)
    subkeys: dict[str, "Key"] = field(default_factory=dict)  # lower name -> key
    volatile: bool = False

    @property
    def name(self) -> str:
        """The last path component."""
        return self.path.rsplit("\\", 1)[-1]


def encode(kind: int, data) -> bytes:
    """A registry.toml value's bytes for its type."""
    if kind == REG_DWORD:
        return struct.pack("<I", int(data) & 0xFFFFFFFF)
    if kind == REG_QWORD:
        return struct.pack("<Q", int(data))
    if kind in (REG_SZ, REG_EXPAND_SZ):
        return str(data).encode("utf-16-le") + b"\0\0"
    if kind == REG_MULTI_SZ:
        return b"".join(str(s).encode("utf-16-le") + b"\0\0" for s in data) + b"\0\0"
    return bytes(data)


class Registry:
    """The keys of one boot."""

    def __init__(self) -> None:
        self.root = Key("")

    def find(self, path: str) -> Key | None:
        """The key at an absolute path (``\\Registry\\...``), or ``None``."""
        key = self.root
        for part in (p for p in path.split("\\") if p):
            key = key.subkeys.get(part.lower())
            if key is None:
                return None
        return key

    def create(self, path: str, *, volatile: bool = False) -> Key:
        """The key at ``path``, created with any missing parents."""
        key = self.root
        for part in (p for p in path.split("\\") if p):
            nxt = key.subkeys.get(part.lower())
            if nxt is None:
                nxt = key.subkeys[part.lower()] = Key(f"{key.path}\\{part}", volatile=volatile)
            key = nxt
        return key

    @staticmethod
    def set_value(key: Key, name: str, kind: int, data: bytes) -> None:
        """Create or replace a value."""
        key.values[name.lower()] = (name, kind, bytes(data))


def load(target_name: str) -> Registry:
    """The registry of ``specs/targets/<target>/registry.toml`` (an empty one when the file is absent)."""
    reg = Registry()
    path = TARGETS_DIR / target_name / "registry.toml"
    if not path.is_file():
        return reg
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{path}: {exc}") from None
    for i, entry in enumerate(data.get("key", [])):
        where = f"{path} [[key]] #{i + 1}"
        kpath, source = entry.get("path"), entry.get("source")
        if not isinstance(kpath, str) or not kpath.startswith("\\Registry\\") or not isinstance(source, str):
            raise SpecError(f"{where}: needs a path starting with \\Registry\\ and a source")
        key = reg.create(kpath, volatile=bool(entry.get("volatile", False)))
        for j, value in enumerate(entry.get("values", [])):
            vname, vtype = value.get("name"), value.get("type")
            if not isinstance(vname, str) or vtype not in TYPE_NAMES or "data" not in value:
                raise SpecError(f"{where} value #{j + 1}: needs a name, a type ({', '.join(TYPE_NAMES)}) and data")
            reg.set_value(key, vname, TYPE_NAMES[vtype], encode(TYPE_NAMES[vtype], value["data"]))
    return reg


def add_hardware_tree(k, reg: Registry) -> None:
    """HARDWARE\\DESCRIPTION\\System\\MultiFunctionAdapter\\<n> from the loader's configuration tree."""
    from .ke import find_next

    base = "\\Registry\\Machine\\HARDWARE\\DESCRIPTION\\System"
    reg.create(base, volatile=True)
    resume = k.mem.alloc(0x1000)
    k.mem.vput(resume, 8, 0)
    index = 0
    while True:
        node = find_next(k, k.config_root, 3, 12, None, resume)  # AdapterClass, MultiFunctionAdapter
        if not node:
            break
        k.mem.vput(resume, 8, node)
        key = reg.create(f"{base}\\MultiFunctionAdapter\\{index}", volatile=True)
        ident = k.get(node, "configuration_component_data", "Identifier")
        text = k.mem.cstring(ident) if ident else ""
        reg.set_value(key, "Identifier", REG_SZ, encode(REG_SZ, text))
        data = k.get(node, "configuration_component_data", "ConfigurationData")
        length = k.get(node, "configuration_component_data", "ConfigurationDataLength")
        if data and length:
            # REG_FULL_RESOURCE_DESCRIPTOR: InterfaceType (Internal 0), BusNumber 0, then the partial list.
            reg.set_value(key, "Configuration Data", REG_FULL_RESOURCE_DESCRIPTOR,
                          struct.pack("<II", 0, 0) + k.mem.vread(data, length))
        index += 1


def get(k) -> Registry:
    """The registry of kernel ``k``."""
    def build() -> Registry:
        reg = load(k.target.name)
        add_hardware_tree(k, reg)
        return reg

    return k.subsystem("registry", build)
