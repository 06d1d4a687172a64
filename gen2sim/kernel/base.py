"""The mini kernel a HAL runs against: PCR/PRCB, loader block, GDT/IDT, stack and the kernel exports.

Everything is laid out from the target description (``specs.load_target``): offsets come from its structure
tables, so a HAL built for the target and the model agree by construction.  Each implemented kernel function is
an address in a stub page holding ``ret``; a code hook on that page runs the Python implementation (arguments
from RCX, RDX, R8, R9 and the stack), records a ``kernel_call`` trace record, sets RAX and lets the ``ret`` run.
"""

from __future__ import annotations

import re
import struct
from typing import Callable

from unicorn import x86_const as X

from ..clock import PS_PER_S
from ..cpu import RunStop
from ..errors import ModelError

STATUS_SUCCESS = 0
STATUS_NOT_IMPLEMENTED = 0xC0000002
KUSER_SHARED_DATA = 0xFFFF_F780_0000_0000
IO_SPACE_VA = 0xFFFF_F800_2000_0000
STUB_SLOT = 16

#: Plausible sizes of the kernel variables a HAL may import (bytes) and their initial contents.
DATA_IMPORTS = {
    "HalDispatchTable": 0xB8,
    "HalPrivateDispatchTable": 0x170,
    "KdDebuggerEnabled": 1,
    "KdDebuggerNotPresent": 1,
    "KiBugCheckData": 5 * 8,
    "IoAdapterObjectType": 8,
    "KeNumberProcessors": 4,
    "InitSafeBootMode": 4,
    "KdComPortInUse": 8,
    "PsInitialSystemProcess": 8,
    "KeLoaderBlock": 8,
}


def _args(cpu, count: int) -> list[int]:
    regs = (X.UC_X86_REG_RCX, X.UC_X86_REG_RDX, X.UC_X86_REG_R8, X.UC_X86_REG_R9)
    out = [cpu.reg(r) for r in regs[: min(count, 4)]]
    if count > 4:
        rsp = cpu.reg(X.UC_X86_REG_RSP)
        out += [cpu.mem.vu(rsp + 8 + 8 * i, 8) for i in range(4, count)]
    return out


class MiniKernel:
    """Per-target kernel state and the Python implementations of kernel exports.

    Subclasses set ``os_version`` and may override ``fill_loader_block``.  Results the scenario reads:
    ``ticks`` (virtual times of KeUpdateSystemTime calls), ``system_time_100ns``, ``time_increment``
    (KeSetTimeIncrement's (max, min)), ``tick_increments``, ``debug_output``, ``bugchecks``.
    """

    os_version = (5, 2)
    firmware_efi = True

    def __init__(self, target, memory, cpu, trace, clock, *, acpi_root_gpa: int, efi: bool = True) -> None:
        self.target = target
        self.mem = memory
        self.cpu = cpu
        self.trace = trace
        self.clock = clock
        self.acpi_root_gpa = acpi_root_gpa
        self.firmware_efi = efi
        self.functions: dict[str, tuple[int, Callable[[], int | None]]] = {}
        self._by_address: dict[int, tuple[str, Callable[[], int | None] | None]] = {}
        self.data: dict[str, int] = {}
        self.ticks: list[int] = []
        self.tick_increments: list[int] = []
        self.system_time_100ns = 0
        self.time_increment: tuple[int, int] | None = None
        self.debug_output: list[str] = []
        self.bugchecks: list[dict] = []
        self.bugcheck_callbacks: list[tuple[int, int, int, int]] = []
        self._io_next = IO_SPACE_VA
        self._build()

    # ------------------------------------------------------------------ layout
    def s(self, struct_name: str, field_name: str) -> int:
        """Offset of a field of a target structure."""
        return self.target.structs[struct_name].offset(field_name)

    def has(self, struct_name: str, field_name: str) -> bool:
        """Whether the target describes the field."""
        return field_name in self.target.structs[struct_name].fields

    def _put_field(self, base: int, struct_name: str, field_name: str, value: int) -> None:
        if not self.has(struct_name, field_name):
            return
        f = self.target.structs[struct_name].fields[field_name]
        size = {"u8": 1, "u16": 2, "u32": 4, "u64": 8, "ptr": 8}.get(f.type, 8)
        self.mem.vput(base + f.offset, size, value)

    def _build(self) -> None:
        m = self.mem
        # Code pages first: stubs for kernel exports, and the trap page calls return to.
        # The trap page follows the stubs with a mapped filler page between them and a mapped page after it:
        # Unicorn touches the page next to the emu_start ``until`` address, and a guard page there turned every
        # return to the trap into a #PF.
        self.stub_va = m.alloc(0x7000)
        self.trap_va = self.stub_va + 0x5000
        m.vwrite(self.stub_va, b"\xc3" * 0x4000 + b"\xcc" * 0x3000)
        self._next_stub = self.stub_va
        self.cpu.trap_va = self.trap_va
        self.cpu.add_stub_range(self.stub_va, 0x4000, self._on_stub)

        self.gdt_va = m.alloc(0x1000)
        gdt = [0, 0, 0x00209B0000000000, 0x00CF93000000FFFF, 0x0020FB0000000000, 0x00CFF3000000FFFF, 0, 0]
        m.vwrite(self.gdt_va, struct.pack("<8Q", *gdt))
        self.idt_va = m.alloc(0x1000)
        self.tss_va = m.alloc(0x1000)
        self.stack_top = m.alloc(0x10000) + 0x10000 - 0x40
        m.map_new(KUSER_SHARED_DATA, 0x1000)

        # PCR + PRCB (one zeroed block well above any described offset).
        self.pcr = m.alloc(0x8000)
        prcb_off = self.s("kpcr", "Prcb")
        self.prcb = self.pcr + prcb_off
        self.thread = m.alloc(0x1000)
        put = self._put_field
        put(self.pcr, "kpcr", "GdtBase", self.gdt_va)
        put(self.pcr, "kpcr", "TssBase", self.tss_va)
        put(self.pcr, "kpcr", "Self", self.pcr)
        put(self.pcr, "kpcr", "CurrentPrcb", self.prcb)
        put(self.pcr, "kpcr", "IdtBase", self.idt_va)
        put(self.pcr, "kpcr", "Irql", self.target.irql["high"])
        put(self.pcr, "kpcr", "MajorVersion", 1)
        put(self.pcr, "kpcr", "MinorVersion", 1)
        put(self.pcr, "kpcr", "StallScaleFactor", self.target.abi.get("initial_stall_count", 100))
        put(self.prcb, "kprcb", "CurrentThread", self.thread)
        put(self.prcb, "kprcb", "Number", 0)
        put(self.prcb, "kprcb", "CpuType", 6)
        put(self.prcb, "kprcb", "CpuID", 1)
        put(self.prcb, "kprcb", "MHz", 2400)
        put(self.prcb, "kprcb", "MajorVersion", self.target.abi["prcb_major_version"])
        put(self.prcb, "kprcb", "MinorVersion", 1)
        put(self.prcb, "kprcb", "CpuVendor", 1)  # CPU_INTEL
        put(self.prcb, "kprcb", "InitialApicId", 0)
        put(self.prcb, "kprcb", "GroupSetMember", 1)

        self.loader_block = self._build_loader_block()
        self._build_data()
        self._register_functions()

    def _build_loader_block(self) -> int:
        m = self.mem
        lb_struct = self.target.structs["loader_block"]
        lb = m.alloc(max(int(lb_struct.constants.get("size", 0x100)), 0x100))
        put = self._put_field
        put(lb, "loader_block", "OsMajorVersion", self.os_version[0])
        put(lb, "loader_block", "OsMinorVersion", self.os_version[1])
        put(lb, "loader_block", "Size", int(lb_struct.constants.get("size", 0)))
        for head in ("LoadOrderListHead", "MemoryDescriptorListHead"):
            if self.has("loader_block", head):
                va = lb + self.s("loader_block", head)
                m.vput(va, 8, va)
                m.vput(va + 8, 8, va)  # empty LIST_ENTRY: Flink = Blink = itself
        put(lb, "loader_block", "Prcb", self.prcb)
        options = m.alloc(0x1000)
        m.vwrite(options, b"GEN2SIM\0")
        put(lb, "loader_block", "LoadOptions", options)
        ext_struct = self.target.structs["loader_extension"]
        ext_size = int(ext_struct.constants.get("size", 0x100))
        ext = m.alloc(ext_size)
        self._put_field(ext, "loader_extension", "Size", ext_size)
        put(lb, "loader_block", "Extension", ext)
        put(lb, "loader_block", "FirmwareInformation", 1 if self.firmware_efi else 0)
        put(lb, "loader_block", "MachineType", 0)
        put(lb, "loader_block", "ConfigurationRoot", self._build_configuration_tree())
        return lb

    def _build_configuration_tree(self) -> int:
        """System root → "ACPI BIOS" adapter (Class 3, Type 12) whose data points the HAL at the XSDT."""
        m = self.mem
        ccd = self.target.structs["configuration_component_data"]
        node_size = int(ccd.constants.get("size", 0x48))
        acpi = self.target.structs["acpi_bios_node"].constants
        root = m.alloc(node_size)
        node = m.alloc(node_size)
        ident = m.alloc(0x1000)
        name = str(acpi.get("identifier", "ACPI BIOS")).encode() + b"\0"
        m.vwrite(ident, name)
        multi = int(acpi.get("multi_node_offset", 0x1C))
        data = m.alloc(0x1000)
        # CM_PARTIAL_RESOURCE_LIST: Version, Revision, Count=1; one CmResourceTypeDeviceSpecific (5) descriptor
        # whose DataSize covers the ACPI_BIOS_MULTI_NODE that follows at +0x1C.
        m.vwrite(data, struct.pack("<HHI", 1, 1, 1) + struct.pack("<BBHIII", 5, 0, 0, 16, 0, 0))
        m.vput(data + multi + self.s("acpi_bios_node", "RsdtAddress"), 8, self.acpi_root_gpa)
        m.vput(data + multi + self.s("acpi_bios_node", "Count"), 8, 0)
        put = self._put_field
        put(root, "configuration_component_data", "Child", node)
        put(root, "configuration_component_data", "Class", 0)  # SystemClass
        put(node, "configuration_component_data", "Parent", root)
        put(node, "configuration_component_data", "Class", int(acpi.get("component_class", 3)))
        put(node, "configuration_component_data", "Type", int(acpi.get("component_type", 12)))
        put(node, "configuration_component_data", "Identifier", ident)
        put(node, "configuration_component_data", "IdentifierLength", len(name))
        put(node, "configuration_component_data", "ConfigurationData", data)
        put(node, "configuration_component_data", "ConfigurationDataLength", multi + 16)
        self.config_root = root
        return root

    def _build_data(self) -> None:
        # A dispatch table the description lays out has the description's size.
        sizes = {t.constants["data_import"]: int(t.constants["size"]) for t in self.target.dispatch_tables.values()}
        for name in sorted(self.target.data_imports):
            va = self.mem.alloc(max(sizes.get(name, DATA_IMPORTS.get(name, 8)), 8))
            self.data[name] = va
        self._init_data()

    # ------------------------------------------------------------------ dispatch tables (targets that describe them)
    def empty_required_slots(self, imported_names) -> list[str]:
        """Dispatch-table slots the HAL had to fill in phase 0 and left empty (none for a kernel without tables)."""
        return []

    def dispatch_state(self) -> dict:
        """Who fills each dispatch-table slot, per table (empty for a kernel without tables)."""
        return {}

    def dispatch_calls(self, call_at, acpi_tables: dict) -> tuple[list[dict], list[str]]:
        """Calls through the dispatch tables in the boot scenario: (records, problems); none by default."""
        return [], []

    def _init_data(self) -> None:
        """Initial values of the data imports (subclasses set table versions)."""
        if "KdDebuggerNotPresent" in self.data:
            self.mem.vput(self.data["KdDebuggerNotPresent"], 1, 1)
        if "KeNumberProcessors" in self.data:
            self.mem.vput(self.data["KeNumberProcessors"], 1, 1)
        if "KeLoaderBlock" in self.data:
            self.mem.vput(self.data["KeLoaderBlock"], 8, self.loader_block)
        if "PsInitialSystemProcess" in self.data:
            self.mem.vput(self.data["PsInitialSystemProcess"], 8, self.mem.alloc(0x1000))

    # ------------------------------------------------------------------ import binding
    def _register_functions(self) -> None:
        for attr in sorted(dir(self)):
            if attr.startswith("k_"):
                self.functions[attr[2:]] = (0, getattr(self, attr))

    def _new_stub(self, name: str, fn) -> int:
        addr = self._next_stub
        if addr + STUB_SLOT > self.stub_va + 0x4000:
            raise ModelError("out of kernel stub slots")
        self._next_stub += STUB_SLOT
        self._by_address[addr] = (name, fn)
        return addr

    def import_address(self, name: str) -> int | None:
        """Address an import ``name`` binds to (function stub or data), or ``None`` when not implemented."""
        if name in self.data:
            return self.data[name]
        entry = self.functions.get(name)
        if entry is None:
            return None
        addr, fn = entry
        if addr == 0:
            addr = self._new_stub(name, fn)
            self.functions[name] = (addr, fn)
        return addr

    def unimplemented_stub(self, name: str) -> int:
        """A recorder stub: reaching it ends the run with ``fault`` kind ``unimplemented-import``."""
        return self._new_stub(name, None)

    def _on_stub(self, address: int) -> None:
        entry = self._by_address.get(address)
        if entry is None:
            raise self.cpu.fault("unmapped", f"jump into the kernel stub page at {address:#x}")
        name, fn = entry
        caller = self.mem.vu(self.cpu.reg(X.UC_X86_REG_RSP), 8)
        # Records the kernel makes name the guest function that called it (the HAL's caller, not the stub), so
        # a trace says which HAL function asked for a tick, a bug check or a table walk.
        caller_fn = self.cpu.locate(caller - 1) if self.cpu.locate else None
        saved_locate = self.trace.locate
        self.trace.locate = lambda: caller_fn
        try:
            if fn is None:
                self.trace.record("kernel_call", device="kernel", address=caller, detail=name)
                raise RunStop({"verdict": "fault", "fault": {
                    "kind": "unimplemented-import", "function": caller_fn, "address": caller,
                    "detail": f"called {name}, which the {self.target.name} kernel exports but the model does not "
                              f"implement"}})
            self._current = name
            result = fn()
        finally:
            self.trace.locate = saved_locate
        if result is not None:
            self.cpu.set_reg(X.UC_X86_REG_RAX, result)

    def call_record(self, name: str, args: list[int], detail: str | None = None) -> None:
        """Record one kernel call in the trace."""
        text = f"{name}({', '.join(hex(a) for a in args)})" + (f" {detail}" if detail else "")
        self.trace.record("kernel_call", device="kernel", detail=text)

    def args(self, n: int) -> list[int]:
        """The first ``n`` integer arguments of the current kernel call."""
        return _args(self.cpu, n)

    # ------------------------------------------------------------------ bug checks
    def k_KeBugCheckEx(self):
        code, p1, p2, p3, p4 = self.args(5)
        code &= 0xFFFFFFFF
        self.call_record("KeBugCheckEx", [code, p1, p2, p3, p4])
        self.trace.record("bugcheck", device="kernel", value=code)
        # The caller is the instruction before the return address: KeBugCheckEx does not return, so the return
        # address may already lie in the next function of the image.
        info = {"code": code, "params": [p1, p2, p3, p4], "reported_via": "KeBugCheckEx",
                "function": self.cpu.locate(self.mem.vu(self.cpu.reg(X.UC_X86_REG_RSP), 8) - 1)}
        self.bugchecks.append(info)
        # As the kernel does, publish the code and parameters before any callback runs.
        if "KiBugCheckData" in self.data:
            for i, value in enumerate((code, p1, p2, p3, p4)):
                self.mem.vput(self.data["KiBugCheckData"] + 8 * i, 8, value)

        def finish():
            # Bug-check callbacks run in the guest before the machine stops (a Gen2 HAL reports through the
            # crash MSRs from one).
            for record, routine, buffer, length in list(self.bugcheck_callbacks):
                try:
                    self.cpu.call(routine, [buffer, length], limit_ps=PS_PER_S // 10)
                except RunStop as stop:
                    self.trace.record("note", device="kernel", detail=f"bug-check callback ended: {stop.verdict.get('verdict')}")
            raise RunStop({"verdict": "bugcheck", "bugcheck": info})

        self.cpu.after_stop(finish)

    def k_KeBugCheck(self):
        (code,) = self.args(1)
        self.cpu.set_reg(X.UC_X86_REG_RDX, 0)
        self.cpu.set_reg(X.UC_X86_REG_R8, 0)
        self.cpu.set_reg(X.UC_X86_REG_R9, 0)
        rsp = self.cpu.reg(X.UC_X86_REG_RSP)
        self.mem.vput(rsp + 0x28, 8, 0)
        return self.k_KeBugCheckEx()

    def k_KeRegisterBugCheckCallback(self):
        record, routine, buffer, length, component = self.args(5)
        self.call_record("KeRegisterBugCheckCallback", [record, routine, buffer, length, component])
        self.bugcheck_callbacks.append((record, routine, buffer, length))
        return 1

    def k_KeDeregisterBugCheckCallback(self):
        (record,) = self.args(1)
        self.call_record("KeDeregisterBugCheckCallback", [record])
        before = len(self.bugcheck_callbacks)
        self.bugcheck_callbacks = [c for c in self.bugcheck_callbacks if c[0] != record]
        return 1 if len(self.bugcheck_callbacks) != before else 0

    # ------------------------------------------------------------------ clock
    def k_KeSetTimeIncrement(self):
        mx, mn = (a & 0xFFFFFFFF for a in self.args(2))
        self.call_record("KeSetTimeIncrement", [mx, mn])
        self.time_increment = (mx, mn)
        return mx

    def k_KeQueryTimeIncrement(self):
        self.call_record("KeQueryTimeIncrement", [])
        return self.time_increment[0] if self.time_increment else 156250

    def k_KeUpdateSystemTime(self):
        frame, increment = self.args(2)
        increment &= 0xFFFFFFFF if len(self.target.abi.get("tick_routine_args", [])) > 2 else 0xFFFF_FFFF_FFFF_FFFF
        self.ticks.append(self.clock.now)
        self.tick_increments.append(increment)
        self.system_time_100ns += increment
        self.trace.record("tick", device="kernel", value=increment)

    def k_KeUpdateRunTime(self):
        self.trace.record("kernel_call", device="kernel", detail="KeUpdateRunTime")

    def k_KeProfileInterruptWithSource(self):
        frame, source = self.args(2)
        self.call_record("KeProfileInterruptWithSource", [frame, source])

    def k_KeQueryPerformanceFrequency(self):  # pragma: no cover - not a kernel export on these targets
        return 0

    # ------------------------------------------------------------------ configuration tree
    def _ccd(self, node: int, field_name: str, size: int = 8) -> int:
        return self.mem.vu(node + self.s("configuration_component_data", field_name), size)

    def _walk(self, start: int):
        """Pre-order walk of the component tree from ``start`` over Child then Sibling links."""
        stack, seen = [start], set()
        while stack:
            node = stack.pop()
            if not node or node in seen or len(seen) > 4096:
                continue
            seen.add(node)
            yield node
            sibling, child = self._ccd(node, "Sibling"), self._ccd(node, "Child")
            stack.append(sibling)
            stack.append(child)

    def _find(self, child: int, cls: int, typ: int, key_ptr: int, resume: int) -> int:
        key = self.mem.vu(key_ptr, 4) if key_ptr else None
        key_off = self.s("configuration_component_data", "Class") + 0x10
        passed = resume == 0
        for node in self._walk(child):
            if not passed:
                passed = node == resume
                continue
            if self._ccd(node, "Class", 4) == cls and self._ccd(node, "Type", 4) == typ:
                if key is None or self.mem.vu(node + key_off, 4) == key:
                    return node
        return 0

    def k_KeFindConfigurationNextEntry(self):
        child, cls, typ, key, resume_ptr = self.args(5)
        resume = self.mem.vu(resume_ptr, 8) if resume_ptr else 0
        found = self._find(child, cls & 0xFFFFFFFF, typ & 0xFFFFFFFF, key, resume)
        self.call_record("KeFindConfigurationNextEntry", [child, cls, typ, key, resume_ptr], f"-> {found:#x}")
        return found

    def k_KeFindConfigurationEntry(self):
        child, cls, typ, key = self.args(4)
        found = self._find(child, cls & 0xFFFFFFFF, typ & 0xFFFFFFFF, key, 0)
        self.call_record("KeFindConfigurationEntry", [child, cls, typ, key], f"-> {found:#x}")
        return found

    # ------------------------------------------------------------------ debug output
    _FMT = re.compile(rb"%([-+ #0]*)(\d*)(?:\.\d+)?(I64|ll|l|h|z|I)?([sdiuxXpc%])")

    def _format(self, fmt_va: int, first_arg: int) -> str:
        fmt = self.mem.cstring(fmt_va).encode("latin-1")
        index = first_arg

        def next_arg() -> int:
            nonlocal index
            value = self.args(index + 1)[index]
            index += 1
            return value

        def sub(m: re.Match) -> bytes:
            conv = m.group(4)
            if conv == b"%":
                return b"%"
            if index >= 12:
                return m.group(0)
            v = next_arg()
            wide = m.group(3) in (b"I64", b"ll")
            if not wide and conv not in (b"p", b"s"):
                v &= 0xFFFFFFFF
            if conv == b"s":
                return self.mem.cstring(v, 256).encode("latin-1") if v else b"(null)"
            if conv in (b"d", b"i"):
                bits = 64 if wide else 32
                return str(v - (1 << bits) if v >> (bits - 1) else v).encode()
            if conv == b"u":
                return str(v).encode()
            if conv == b"c":
                return bytes([v & 0xFF])
            if conv == b"p":
                return f"{v:016X}".encode()
            return (f"{v:x}" if conv == b"x" else f"{v:X}").encode()

        return self._FMT.sub(sub, fmt).decode("latin-1")

    def k_DbgPrint(self):
        (fmt,) = self.args(1)
        text = self._format(fmt, 1)
        self.debug_output.append(text)
        self.trace.record("kernel_call", device="kernel", detail=f"DbgPrint {text!r}")
        return 0

    def k_DbgPrintEx(self):
        comp, level, fmt = self.args(3)
        text = self._format(fmt, 3)
        self.debug_output.append(text)
        self.trace.record("kernel_call", device="kernel", detail=f"DbgPrintEx {text!r}")
        return 0

    # ------------------------------------------------------------------ I/O manager leftovers
    def _not_implemented(self, name: str, n: int):
        self.call_record(name, self.args(n), "-> STATUS_NOT_IMPLEMENTED")
        return STATUS_NOT_IMPLEMENTED

    def k_IoReadPartitionTable(self):
        return self._not_implemented("IoReadPartitionTable", 4)

    def k_IoSetPartitionInformation(self):
        return self._not_implemented("IoSetPartitionInformation", 4)

    def k_IoWritePartitionTable(self):
        return self._not_implemented("IoWritePartitionTable", 5)

    # ------------------------------------------------------------------ memory
    def k_MmMapIoSpace(self):
        phys, size, cache = self.args(3)
        off = phys & 0xFFF
        pages = (off + size + 0xFFF) & ~0xFFF
        va = self._io_next
        self._io_next += pages + 0x1000
        self.mem.tables.map(va, phys & ~0xFFF, pages, uncached=True)
        self.call_record("MmMapIoSpace", [phys, size, cache], f"-> {va + off:#x}")
        return va + off

    def k_MmUnmapIoSpace(self):
        self.call_record("MmUnmapIoSpace", self.args(2))

    def k_ExAllocatePoolWithTag(self):
        pool, size, tag = self.args(3)
        va = self.mem.alloc(max(size, 1)) if size < (16 << 20) else 0
        self.call_record("ExAllocatePoolWithTag", [pool, size, tag], f"-> {va:#x}")
        return va

    def k_ExAllocatePool(self):
        pool, size = self.args(2)
        va = self.mem.alloc(max(size, 1)) if size < (16 << 20) else 0
        self.call_record("ExAllocatePool", [pool, size], f"-> {va:#x}")
        return va

    def k_ExFreePoolWithTag(self):
        self.call_record("ExFreePoolWithTag", self.args(2))

    def k_ExFreePool(self):
        self.call_record("ExFreePool", self.args(1))

    def k_KeInitializeDpc(self):
        self.call_record("KeInitializeDpc", self.args(3))

    def k_KeInsertQueueDpc(self):
        self.call_record("KeInsertQueueDpc", self.args(3), "-> FALSE (no DPC processing in the model)")
        return 0
