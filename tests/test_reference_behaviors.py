"""Each legacy behaviour of the reference HAL is where product.md says, seen in the BUILT code.

The link map gives each function's exact extent; capstone disassembles it (and the HAL functions it calls
directly); a small constant tracker resolves port numbers, values written and the arguments of calls. What is
asserted is therefore what the hal.dll really does, not what the C source says it does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import capstone
import pefile
import pytest
from capstone import x86

import specs
from generator import linkmap

from conftest import TARGETS

# Offsets of FADT fields in the ACPI specification's table layout.
FADT_SMI_CMD = 48
FADT_PM1A_CNT_BLK = 64
FADT_PM_TMR_BLK = 76
FADT_PM_TMR_LEN = 91
FADT_X_PM_TMR_BLK = 208

_ARG_REGS = {"ecx": 0, "rcx": 0, "cl": 0, "edx": 1, "rdx": 1, "dl": 1, "r8d": 2, "r8": 2, "r9d": 3, "r9": 3}


@dataclass
class Facts:
    """What a function (and the HAL functions it calls) does, as far as constants show."""

    port_writes: list[tuple[int | None, int | None]] = field(default_factory=list)  # (port, value)
    port_reads: list[int | None] = field(default_factory=list)
    calls: list[tuple[str, dict[int, int]]] = field(default_factory=list)  # (callee, {arg index: constant})
    data_reads: list[int] = field(default_factory=list)  # absolute addresses read RIP-relative
    mnemonics: set[str] = field(default_factory=set)
    instructions: int = 0

    def calls_to(self, name: str) -> list[dict[int, int]]:
        return [args for callee, args in self.calls if callee == name]


class BuiltHal:
    """A linked hal.dll plus its link map."""

    def __init__(self, folder):
        self.pe = pefile.PE(str(folder / "hal.dll"))
        self.base = self.pe.OPTIONAL_HEADER.ImageBase
        self.symbols = linkmap.load(folder / "hal.map")
        self.functions = linkmap.functions(self.symbols)
        self.by_address = {s.address: n for n, s in self.functions.items()}
        self.iat = {}
        for entry in self.pe.DIRECTORY_ENTRY_IMPORT:
            for imp in entry.imports:
                self.iat[imp.address] = imp.name.decode()
        self.md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self.md.detail = True

    def disassemble(self, name):
        sym = self.functions[name]
        code = self.pe.get_data(sym.address - self.base, sym.size)
        return list(self.md.disasm(code, sym.address))

    def facts(self, name: str, depth: int = 3, _seen=None) -> Facts:
        """Facts of ``name`` and, ``depth`` levels deep, of the HAL functions it calls directly."""
        seen = _seen if _seen is not None else set()
        seen.add(name)
        out = Facts()
        regs: dict[str, int] = {}
        pointers: dict[int, int] = {}  # capstone register id -> address of the data symbol it points at
        for insn in self.disassemble(name):
            out.instructions += 1
            out.mnemonics.add(insn.mnemonic)
            ops = insn.op_str
            for op in insn.operands:
                if op.type != x86.X86_OP_MEM or insn.mnemonic == "lea":
                    continue
                if op.mem.base == x86.X86_REG_RIP:
                    address = insn.address + insn.size + op.mem.disp
                    target = self._refptr_target(address)
                    if target is not None and insn.operands[0].type == x86.X86_OP_REG:
                        # mingw reaches extern data through a .refptr slot: the register now points at it.
                        pointers[insn.operands[0].reg] = target
                    else:
                        out.data_reads.append(address)
                elif op.mem.base in pointers:
                    out.data_reads.append(pointers[op.mem.base] + op.mem.disp)
            m = re.fullmatch(r"(\w+), (0x[0-9a-f]+|\d+)", ops)
            if insn.mnemonic == "mov" and m:
                regs[m.group(1)] = int(m.group(2), 0)
                continue
            m = re.fullmatch(r"(\w+), (\w+)", ops)
            if insn.mnemonic == "xor" and m and m.group(1) == m.group(2):
                regs[m.group(1)] = 0
                continue
            if insn.mnemonic == "out":
                port_s, val_s = [s.strip() for s in ops.split(",")]
                port = int(port_s, 0) if port_s.startswith("0x") or port_s.isdigit() else _reg(regs, "edx", "dx")
                value = _reg(regs, "eax", "al", "ax")
                width = {"al": 0xFF, "ax": 0xFFFF, "eax": 0xFFFFFFFF}[val_s]
                out.port_writes.append((port, None if value is None else value & width))
                continue
            if insn.mnemonic == "in":
                port_s = ops.split(",")[1].strip()
                out.port_reads.append(int(port_s, 0) if port_s[0].isdigit() else _reg(regs, "edx", "dx"))
                continue
            if insn.mnemonic in ("call", "jmp") and insn.operands:
                op = insn.operands[0]
                callee = None
                if op.type == x86.X86_OP_IMM:
                    callee = self.by_address.get(op.imm & 0xFFFFFFFFFFFFFFFF)
                elif op.type == x86.X86_OP_MEM and op.mem.base == x86.X86_REG_RIP:
                    callee = self.iat.get(insn.address + insn.size + op.mem.disp)
                if callee is not None:
                    args = {idx: regs[r] for r, idx in _ARG_REGS.items() if r in regs}
                    out.calls.append((callee, args))
                    if callee in self.functions and callee not in seen and depth > 0:
                        sub = self.facts(callee, depth - 1, seen)
                        out.port_writes += sub.port_writes
                        out.port_reads += sub.port_reads
                        out.calls += sub.calls
                        out.data_reads += sub.data_reads
                        out.mnemonics |= sub.mnemonics
                if insn.mnemonic == "call":
                    for r in ("eax", "rax", "al", "ecx", "rcx", "cl", "edx", "rdx", "dl", "r8", "r8d", "r9", "r9d"):
                        regs.pop(r, None)
                continue
            # Anything else that writes a tracked register makes its constant unknown.
            if ops:
                dest = ops.split(",")[0].strip()
                regs.pop(dest, None)
        return out

    def _refptr_target(self, address: int) -> int | None:
        for name, sym in self.symbols.items():
            if name.startswith(".refptr.") and sym.address == address:
                target = self.symbols.get(name[len(".refptr."):])
                return target.address if target else None
        return None

    def data_symbol_offset(self, address: int, symbol: str) -> int | None:
        """``address - symbol`` when ``address`` lies inside ``symbol``, else None."""
        sym = self.symbols.get(symbol)
        if sym is None or not sym.contains(address):
            return None
        return address - sym.address


def _reg(regs, *names):
    for n in names:
        if n in regs:
            return regs[n]
    return None


@pytest.fixture(scope="module", params=TARGETS)
def hal(request, reference_build):
    return BuiltHal(reference_build[request.param])


def test_map_names_every_export(hal):
    aliases = {"IoReadPartitionTable", "IoSetPartitionInformation", "IoWritePartitionTable",
               "IoAssignDriveLetters", "KdComPortInUse"}
    exports = [s.name.decode() for s in hal.pe.DIRECTORY_ENTRY_EXPORT.symbols]
    missing = [e for e in exports if e not in hal.symbols and e not in aliases]
    assert missing == []


def test_madt_pcat_check_bugchecks_0x79_6(hal):
    facts = hal.facts("HalpVerifyPcatCompatibility")
    assert {0: 0x79, 1: 6} in [{k: v for k, v in a.items() if k in (0, 1)} for a in facts.calls_to("KeBugCheckEx")]


def test_8259_init_and_mask(hal):
    writes = hal.facts("HalpInitializeLegacyPICs").port_writes
    ports = {p for p, _ in writes}
    assert {0x20, 0x21, 0xA0, 0xA1} <= ports
    assert (0x20, 0x11) in writes and (0xA0, 0x11) in writes      # ICW1: edge, cascade, ICW4 follows
    assert (0x21, 0xFF) in writes and (0xA1, 0xFF) in writes      # final masks


def test_calibration_polls_rtc_register_a(hal):
    # Timer scaling's second path (no PM timer declared): two rising edges of the RTC's update-in-progress bit.
    facts = hal.facts("HalpCalibrateStallExecution")
    assert (0x70, 0x0A) in facts.port_writes                       # select register A
    assert facts.port_reads.count(0x71) >= 2                       # poll UIP down, then up
    assert "rdtsc" in facts.mnemonics


def test_calibration_takes_the_pm_timer_path_through_the_legacy_field(hal):
    # Timer scaling as Windows 7's: the PM timer whenever the FADT declares one (PM_TMR_LEN), read at the port the
    # legacy 32-bit PM_TMR_BLK holds -- never X_PM_TMR_BLK -- and not through HalpReadPmTimer (whose zero-port bug
    # check would turn Generation 2's endless loop into something else).
    facts = hal.facts("HalpCalibrateStallExecution", depth=0)
    offsets = {hal.data_symbol_offset(a, "HalpFadt") for a in facts.data_reads}
    assert {FADT_PM_TMR_LEN, FADT_PM_TMR_BLK} <= offsets
    assert FADT_X_PM_TMR_BLK not in offsets and FADT_X_PM_TMR_BLK + 4 not in offsets
    assert "HalpReadPmTimer" not in [c for c, _ in facts.calls]
    assert None in facts.port_reads                                # the port comes from that field, not a constant
    assert "in" in facts.mnemonics and "rdtsc" in facts.mnemonics


def test_performance_counter_reads_pm_timer_through_legacy_fadt_field(hal):
    facts = hal.facts("KeQueryPerformanceCounter")
    assert "HalpReadPmTimer" in [c for c, _ in facts.calls]
    offsets = {hal.data_symbol_offset(a, "HalpFadt") for a in hal.facts("HalpReadPmTimer").data_reads}
    assert FADT_PM_TMR_BLK in offsets and FADT_X_PM_TMR_BLK not in offsets
    assert None in hal.facts("HalpReadPmTimer").port_reads         # the port comes from that field, not a constant


def test_clock_from_rtc_periodic_interrupt(hal):
    init = hal.facts("HalpInitializeClock")
    cmos_writes = [a.get(0) for a in init.calls_to("HalpWriteCmos")]
    assert 0x0B in cmos_writes and 0x0A in cmos_writes             # register B (PIE) and A (rate)
    assert init.calls_to("KeSetTimeIncrement")
    isr = hal.facts("HalpClockInterruptHandler")
    assert 0x0C in [a.get(0) for a in isr.calls_to("HalpReadCmos")]  # register C re-arms the RTC
    assert isr.calls_to("KeUpdateSystemTime")


def test_acpi_enable_handshake_and_bugcheck(hal):
    facts = hal.facts("HalpAcpiEnable")
    offsets = {hal.data_symbol_offset(a, "HalpFadt") for a in facts.data_reads}
    assert {FADT_SMI_CMD, FADT_PM1A_CNT_BLK} <= offsets
    bugchecks = [(a.get(0), a.get(1), a.get(2)) for a in facts.calls_to("KeBugCheckEx")]
    assert (0xA5, 0x11, 6) in bugchecks


def test_reset_through_i8042(hal):
    assert (0x64, 0xFE) in hal.facts("HalpReboot").port_writes


# Exports the issue names as "real implementations": each must do work of its own, not just fail.
REAL_EXPORTS = [
    "HalInitSystem", "HalInitializeProcessor", "KeStallExecutionProcessor", "KeQueryPerformanceCounter",
    "HalCalibratePerformanceCounter", "HalSetTimeIncrement", "HalRequestIpi", "HalProcessorIdle",
    "HalQueryRealTimeClock", "HalSetRealTimeClock", "HalReturnToFirmware", "HalHandleNMI", "KeFlushWriteBuffer",
]


@pytest.mark.parametrize("name", REAL_EXPORTS)
def test_real_exports_are_not_stubs(hal, name):
    facts = hal.facts(name, depth=2)
    only_bugcheck = [c for c, _ in facts.calls] == ["KeBugCheckEx"]
    assert not only_bugcheck, f"{name} only bug checks"
    if name == "KeFlushWriteBuffer":
        assert facts.mnemonics & {"mfence", "sfence", "lock", "xchg", "or"}, "no store fence"
        return
    if name == "HalProcessorIdle":
        assert {"sti", "hlt"} <= facts.mnemonics
        return
    assert facts.instructions >= 8, f"{name}: {facts.instructions} instructions is a stub"


def test_interrupt_routing_honours_overrides(hal):
    # Bus IRQs become IOAPIC inputs through the MADT's interrupt source overrides, for the kernel's requests
    # (HalGetInterruptVector) and for the HAL's own clock.
    assert "HalpIrqToGsi" in {c for c, _ in hal.facts("HalGetInterruptVector").calls}
    assert "HalpIrqToGsi" in {c for c, _ in hal.facts("HalpInitializeClock", depth=4).calls}


@pytest.mark.parametrize("target", TARGETS)
def test_gen2_with_pcat_forced_hangs_in_timer_scaling_on_port_0(reference_build, target):
    # Past the MADT check (--madt-pcat on), Generation 2 stops the reference HAL where it stops Windows 7: timer
    # scaling's PM-timer path (its FADT declares PM_TMR_LEN = 4) polls the port of the zero legacy PM_TMR_BLK.
    from gen2sim.compare import verdict_text
    from gen2sim.scenario import boot

    result = boot(reference_build[target] / "hal.dll", target, "gen2", madt_pcat=True).result
    assert result["verdict"] == "hang", result.get("verdict")
    hang = result["hang"]
    assert hang["function"] == "HalpCalibrateStallExecution"
    assert hang["polls"]["port_or_address"] == 0 and hang["polls"]["device"] == "absent", hang["polls"]
    assert verdict_text(result) == "hang in HalpCalibrateStallExecution polling absent 0x0"


@pytest.mark.parametrize("target", TARGETS)
def test_without_a_pm_timer_timer_scaling_takes_the_rtc_path(reference_build, target, tmp_path):
    # The other path of timer scaling: a FADT that declares no PM timer (PM_TMR_LEN = 0) on Generation 1's tables
    # makes the reference HAL count between two RTC update edges -- about a second more of HalInitSystem than the
    # 1/8 s PM-timer window, and the RTC's register A is polled instead of the PM timer.
    import struct

    from gen2sim import acpi
    from gen2sim.scenario import boot

    image = acpi.build_tables("gen1", 0xF000_0000)
    for sig in ("APIC", "FACP", "DSDT"):
        data = bytearray(image.tables[sig][1])
        if sig == "FACP":
            data[FADT_PM_TMR_LEN] = 0
            data[9] = 0
            data[9] = (-sum(data)) & 0xFF
        (tmp_path / f"{sig.lower()}.dat").write_bytes(bytes(data))
    with_pm = boot(reference_build[target] / "hal.dll", target, "gen1").result
    rtc = boot(reference_build[target] / "hal.dll", target, "gen1", acpi_dir=str(tmp_path)).result
    assert with_pm["verdict"] == "booted" and rtc["verdict"] == "booted", (with_pm["verdict"], rtc["verdict"])
    assert with_pm["hal_init_virtual_us"] < 200_000 < 1_000_000 < rtc["hal_init_virtual_us"]
    touched = {t["device"] for t in rtc["legacy_touches"] if t["first_function"] == "HalpCalibrateStallExecution"}
    assert "RTC register A" in touched, rtc["legacy_touches"]
    assert struct.unpack_from("<B", image.tables["FACP"][1], FADT_PM_TMR_LEN)[0] == 4   # gen1 declares one
