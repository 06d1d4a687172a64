"""Kernel structure layouts the model's kernel reads and writes, from the target description.

The header sections of a description (``[kpcr]``, ``[kprcb]``, ``[loader_block]`` ...) are what a HAL touches and
are rendered into the C header; the structures only the kernel side of the model needs (driver and device
objects, MDLs, dispatcher objects, registry information classes ...) live under ``[kernel.<name>]`` in the same
file with their source.  ``Layouts`` answers both: ``off("mdl", "ByteCount")``, ``size("mdl")``, and reads or
writes a field with its declared width (``get``/``put``).  A structure or field the description lacks is a
``SpecError`` naming the file and the section, raised the first time the model needs it.
"""

from __future__ import annotations

import tomllib

from specs import FIELD_TYPES, SpecError, Struct, _struct

_WIDTH = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "ptr": 8, "list": 16, "u128": 16}


class Layouts:
    """Field offsets of a target's structures: the header sections plus ``[kernel.*]``."""

    def __init__(self, target) -> None:
        self.target = target
        try:
            raw = tomllib.loads(target.path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SpecError(f"{target.path}: {exc}") from None
        kernel = raw.get("kernel", {})
        if not isinstance(kernel, dict):
            raise SpecError(f"{target.path}: [kernel] should be a table of structure tables")
        self.kernel_tables = {k: v for k, v in kernel.items() if isinstance(v, dict)}
        self._structs: dict[str, Struct] = dict(target.structs)

    def struct(self, name: str) -> Struct:
        """The structure ``name`` (a header section or ``[kernel.<name>]``)."""
        s = self._structs.get(name)
        if s is None:
            table = self.kernel_tables.get(name)
            if table is None:
                raise SpecError(f"{self.target.path}: no [kernel.{name}] section (the model's kernel needs its "
                                f"layout)")
            s = _struct(name, table, str(self.target.path))
            for f in s.fields.values():
                if f.type not in FIELD_TYPES:
                    raise SpecError(f"{self.target.path} [kernel.{name}].{f.name}: bad type {f.type!r}")
            self._structs[name] = s
        return s

    def has(self, struct_name: str, field_name: str) -> bool:
        """Whether the structure is described and has the field."""
        try:
            return field_name in self.struct(struct_name).fields
        except SpecError:
            return False

    def off(self, struct_name: str, field_name: str) -> int:
        """Offset of a field (``SpecError`` naming the section when it is not described)."""
        s = self.struct(struct_name)
        f = s.fields.get(field_name)
        if f is None:
            where = struct_name if struct_name in self.target.structs else f"kernel.{struct_name}"
            raise SpecError(f"{self.target.path} [{where}]: no field {field_name!r}")
        return f.offset

    def width(self, struct_name: str, field_name: str) -> int:
        """Bytes of one element of a field."""
        self.off(struct_name, field_name)
        return _WIDTH.get(self.struct(struct_name).fields[field_name].type, 8)

    def size(self, struct_name: str) -> int:
        """The structure's ``size`` constant."""
        size = self.struct(struct_name).constants.get("size")
        if not isinstance(size, int):
            raise SpecError(f"{self.target.path} [kernel.{struct_name}]: no integer 'size'")
        return size

    def const(self, struct_name: str, key: str):
        """A plain constant stored beside a structure's fields."""
        s = self.struct(struct_name)
        if key not in s.constants:
            raise SpecError(f"{self.target.path} [kernel.{struct_name}]: no {key!r}")
        return s.constants[key]

    def get(self, mem, base: int, struct_name: str, field_name: str) -> int:
        """Read a field of the structure at ``base`` with its declared width."""
        return mem.vu(base + self.off(struct_name, field_name), self.width(struct_name, field_name))

    def put(self, mem, base: int, struct_name: str, field_name: str, value: int) -> None:
        """Write a field of the structure at ``base`` with its declared width."""
        mem.vput(base + self.off(struct_name, field_name), self.width(struct_name, field_name), value)
