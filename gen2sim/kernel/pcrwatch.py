"""Watch the guest's accesses to the PCR/PRCB block outside the fields the target description covers.

The model's PCR/PRCB is a zeroed block with the described fields filled; a HAL that reads any other field would
silently get 0.  A memory hook on the block's physical pages records every guest access that is not wholly inside
a described field (trace kind ``pcr_access``) and keeps a summary per (structure, offset, size, access) for the
verdict: which undescribed fields a HAL touched, how often, and from which function first.  Accesses the model
makes from Python do not pass through the hook.
"""

from __future__ import annotations

from unicorn import UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE, UC_MEM_WRITE

PCR_BLOCK = 0x8000


class PcrWatch:
    """Undescribed PCR/PRCB accesses of one boot (``summary()`` for the result)."""

    def __init__(self, k) -> None:
        self.k = k
        self.prcb_offset = k.s("kpcr", "Prcb")
        self.described = self._described(k)
        self.seen: dict[tuple[str, int, int, str], dict] = {}
        gpa = k.mem.translate(k.pcr)
        self.gpa = gpa
        k.cpu.uc.hook_add(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, self._hook, None, gpa, gpa + PCR_BLOCK - 1)

    def _described(self, k) -> list[tuple[int, int]]:
        spans = []
        for section, base in (("kpcr", 0), ("kprcb", self.prcb_offset)):
            for f in k.target.structs[section].fields.values():
                width = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "ptr": 8, "list": 16, "u128": 16}.get(f.type, 0)
                if width:
                    spans.append((base + f.offset, base + f.offset + width * max(f.count, 1)))
        return sorted(spans)

    def covered(self, offset: int, size: int) -> bool:
        """Whether ``[offset, offset + size)`` of the block lies inside one described field."""
        return any(lo <= offset and offset + size <= hi for lo, hi in self.described)

    def _hook(self, uc, access, address, size, value, _ud) -> None:
        offset = address - self.gpa
        if self.covered(offset, size):
            return
        kind = "write" if access == UC_MEM_WRITE else "read"
        if offset >= self.prcb_offset:
            structure, rel = "KPRCB", offset - self.prcb_offset
        else:
            structure, rel = "KPCR", offset
        key = (structure, rel, size, kind)
        entry = self.seen.get(key)
        if entry is None:
            function = self.k.trace.locate()
            entry = self.seen[key] = {"structure": structure, "offset": rel, "size": size, "access": kind,
                                      "count": 0, "first_function": function}
            # One trace record per distinct field and access (a polled field would flood the trace).
            self.k.trace.record("pcr_access", device="kernel", address=rel, size=size,
                                value=value if kind == "write" else None,
                                detail=f"{kind} of {structure}+{rel:#x} ({size} bytes), a field the "
                                       f"{self.k.target.name} description does not cover")
        entry["count"] += 1

    def summary(self) -> list[dict]:
        """The undescribed accesses, sorted by structure, offset, size and access."""
        return [dict(v) for _k, v in sorted(self.seen.items())]
