"""Mini kernel of Windows 7 SP1 x64 (NT 6.1): loader block 6.1 with its Size/Extension, and the dispatch tables.

The layouts come from ``specs/targets/win7sp1-amd64.toml`` like every other structure: ``HalDispatchTable``
(``[hal_dispatch_table]``: Version 4, size 0xB8) and ``HalPrivateDispatchTable`` (``[hal_private_dispatch_table]``:
Version 13, size 0x170) are the data imports the HAL binds to.  Slots the real kernel pre-fills point at recorder
stubs here ("kernel defaults": they record the call and answer ``STATUS_NOT_IMPLEMENTED``, standing in for
defaults whose behaviour the model does not reproduce); slots without a kernel default start at 0.

After ``HalInitSystem(0)`` the scenario asks :meth:`empty_required_slots`: a slot without a default still 0 would
make the real kernel call address 0 the first time it needs the service, so the run ends with ``fault`` kind
``dispatch-slot-empty`` naming the slots (a fault, not a bug check: the real kernel would not bug-check with a
code of its own, it would take a page fault at a NULL call).  The boot scenario then calls through some slots
(:meth:`dispatch_calls`) and checks the answers against what the model knows (the platform's ACPI tables): an
answer that breaks the slot's contract (a table pointer that does not point at the table, a success with a
returned length beyond the buffer) ends the run with ``fault`` kind ``dispatch-call-failed``; an honest "not
found" / "no" is recorded in the result's ``dispatch.calls``.
"""

from __future__ import annotations

import struct

from .base import MiniKernel

STATUS_SUCCESS = 0
#: HAL_QUERY_INFORMATION_CLASS HalProfileSourceInformation and KPROFILE_SOURCE ProfileTime (DDK values).
HAL_PROFILE_SOURCE_INFORMATION = 1
PROFILE_TIME = 0
#: A signature no platform of the model has: the lookup must answer NULL.
ABSENT_TABLE = b"GNHX"


def _sig(text: bytes) -> int:
    return struct.unpack("<I", text)[0]


class Win7Kernel(MiniKernel):
    """NT 6.1: ``LOADER_PARAMETER_BLOCK`` starts with OsMajorVersion 6, OsMinorVersion 1, Size 0xF0."""

    os_version = (6, 1)

    def empty_required_slots(self, imported_names) -> list[str]:
        """Slots without a kernel default that are still 0, as ``Table.Slot``.

        A table the HAL does not import cannot have been filled by it: every required slot of it counts as empty
        (the real kernel's table exists whether or not the HAL binds to it).
        """
        empty = []
        for section, table in self.target.dispatch_tables.items():
            name = table.constants["data_import"]
            va = self.data.get(name)
            for slot in table.slots(kernel_default=False):
                if name not in imported_names or va is None or self.mem.vu(va + slot.offset, 8) == 0:
                    empty.append(f"{name}.{slot.name}")
        return empty

    def dispatch_calls(self, call_at, acpi_tables: dict) -> tuple[list[dict], list[str]]:
        """Call through the filled slots the way the kernel and boot drivers do; returns (records, problems).

        ``call_at(address, args)`` runs guest code and returns RAX; ``acpi_tables`` maps signatures to the
        platform's (guest physical address, bytes) so the answers can be checked.
        """
        records: list[dict] = []
        problems: list[str] = []
        buf = self.mem.alloc(0x1000)

        def slot(section, name):
            value = self.slot_value(section, name)
            return value, self.slot_owner(value)

        # HalQuerySystemInformation(HalProfileSourceInformation): the kernel's profiling start-up asks this.
        fn, owner = slot("hal_dispatch_table", "HalQuerySystemInformation")
        if fn:
            self.mem.vwrite(buf, struct.pack("<IBxxxI", PROFILE_TIME, 0xEE, 0xFFFFFFFF))
            self.mem.vput(buf + 0x20, 4, 0xFFFFFFFF)
            status = call_at(fn, [HAL_PROFILE_SOURCE_INFORMATION, 12, buf, buf + 0x20]) & 0xFFFFFFFF
            source, supported, interval = struct.unpack("<IBxxxI", self.mem.vread(buf, 12))
            returned = self.mem.vu(buf + 0x20, 4)
            rec = {"slot": "HalDispatchTable.HalQuerySystemInformation", "filled_by": owner,
                   "call": "HalProfileSourceInformation(ProfileTime)", "status": status}
            if status == STATUS_SUCCESS:
                rec.update(supported=bool(supported), interval_100ns=interval, returned_length=returned)
                if returned > 12 or supported not in (0, 1):
                    problems.append(f"HalQuerySystemInformation(HalProfileSourceInformation) answered success with "
                                    f"returned length {returned} / Supported {supported}")
            records.append(rec)

        # HalGetCachedAcpiTable: acpi.sys and the kernel look tables up through it; the answer must be the table.
        fn, owner = slot("hal_dispatch_table", "HalGetCachedAcpiTable")
        if fn:
            for sig in (b"FACP", b"APIC", ABSENT_TABLE):
                va = call_at(fn, [_sig(sig), 0, 0])
                rec = {"slot": "HalDispatchTable.HalGetCachedAcpiTable", "filled_by": owner,
                       "call": sig.decode(), "result": va}
                expected = acpi_tables.get(sig.decode())
                if expected is not None:
                    # NULL is an answer ("not found", recorded); a pointer to anything but the table is a lie.
                    header = self.mem.vread(va, 36) if va and self.mem.translate(va) is not None else b""
                    rec["found"] = header[:4] == sig
                    if va and (header[:4] != sig or header[4:8] != expected[1][4:8]):
                        problems.append(f"HalGetCachedAcpiTable({sig.decode()}) returned {va:#x}, which does not "
                                        f"hold the platform's {sig.decode()} table")
                elif va != 0:
                    problems.append(f"HalGetCachedAcpiTable({sig.decode()}) returned {va:#x} for a table the "
                                    f"platform does not have")
                records.append(rec)

        # HalFindBusAddressTranslation: the first bus's translation of a memory address (the debugger path).
        fn, owner = slot("hal_private_dispatch_table", "HalFindBusAddressTranslation")
        if fn:
            space, translated, context = buf + 0x100, buf + 0x108, buf + 0x110
            self.mem.vput(space, 4, 0)
            self.mem.vput(translated, 8, 0)
            self.mem.vput(context, 8, 0)
            ok = call_at(fn, [0xFEBF_0000, space, translated, context, 1]) & 0xFF
            rec = {"slot": "HalPrivateDispatchTable.HalFindBusAddressTranslation", "filled_by": owner,
                   "call": "0xFEBF0000 first bus", "result": bool(ok),
                   "translated": self.mem.vu(translated, 8) if ok else None}
            records.append(rec)
        return records, problems
