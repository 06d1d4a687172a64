"""The CPU core: Unicorn x86-64 with real paging, intercepted privileged instructions and virtual time.

Choices, and why:
- Real x64 paging (CR3 = the model's PML4, CR4.PAE, EFER.LME/LMA, CR0.PG written with ``reg_write``/
  ``msr_write``) rather than ``UC_TLB_VIRTUAL``: a HAL maps physical memory by writing PTEs through the self-map
  and ``invlpg``; with real paging QEMU's MMU honours those writes exactly as hardware does, kernel-half
  addresses work, and no Python TLB-fill hook runs on every miss.
- RDMSR/WRMSR/MOV CR8/HLT/RDTSC/RDTSCP/IRETQ are found by a byte scan of the executable sections and hooked with
  ``UC_HOOK_CODE`` on each exact address (code hooks fire only at instruction starts, so a false match inside
  another instruction costs nothing).  Natively Unicorn would silently read 0 / drop them.
- VMCALL raises ``UC_ERR_INSN_INVALID`` in Unicorn; the run loop recognises the bytes and calls the Hyper-V
  model, so the hypercall page needs no scan wherever the guest maps it.
- Virtual time: a ``UC_HOOK_BLOCK`` hook charges ``instructions in block × COSTS['instruction']`` (the count is
  decoded once per block with capstone and cached) and stops emulation when an interrupt became deliverable, so
  interrupts are delivered at block boundaries through the guest IDT.
- Anything that ends a run (fault, bug check, hang, reset) is raised as ``RunStop`` carrying a verdict dict.
"""

from __future__ import annotations

import re
import struct
from typing import Callable

import capstone
from unicorn import (UC_ARCH_X86, UC_ERR_FETCH_UNMAPPED, UC_ERR_INSN_INVALID, UC_ERR_READ_UNMAPPED,
                     UC_ERR_WRITE_UNMAPPED, UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_INSN, UC_HOOK_INTR,
                     UC_HOOK_MEM_UNMAPPED, UC_MODE_64, UC_PROT_ALL, Uc, UcError)
from unicorn import x86_const as X

from .clock import COSTS, PS_PER_S, PS_PER_US, VirtualClock
from .errors import GuestFault, MachineReset, ModelError
from .fastforward import FastForward, enabled_by_default
from .memory import GuestMemory

MSR_TSC, MSR_APIC_BASE, MSR_TSC_DEADLINE = 0x10, 0x1B, 0x6E0
MSR_EFER, MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE = 0xC0000080, 0xC0000100, 0xC0000101, 0xC0000102
MSR_TSC_AUX = 0xC0000103
#: CPUID feature bits that decide whether an instruction or MSR exists (Intel SDM vol. 2A, CPUID).
CPUID1_ECX_X2APIC, CPUID1_ECX_TSC_DEADLINE = 1 << 21, 1 << 24
CPUID80000001_EDX_RDTSCP = 1 << 27
APIC_BASE_EXTD = 1 << 10
RFLAGS_IF = 0x200

_VECTOR_NAMES = {0: "#DE", 1: "#DB", 3: "#BP", 6: "#UD", 8: "#DF", 13: "#GP", 14: "#PF", 17: "#AC", 18: "#MC"}
_GPR = {
    0: X.UC_X86_REG_RAX, 1: X.UC_X86_REG_RCX, 2: X.UC_X86_REG_RDX, 3: X.UC_X86_REG_RBX, 4: X.UC_X86_REG_RSP,
    5: X.UC_X86_REG_RBP, 6: X.UC_X86_REG_RSI, 7: X.UC_X86_REG_RDI, 8: X.UC_X86_REG_R8, 9: X.UC_X86_REG_R9,
    10: X.UC_X86_REG_R10, 11: X.UC_X86_REG_R11, 12: X.UC_X86_REG_R12, 13: X.UC_X86_REG_R13,
    14: X.UC_X86_REG_R14, 15: X.UC_X86_REG_R15,
}
#: Fixed, deterministic CPUID answers (an Intel-like family 6 CPU).  Leaf 1 ECX[31] comes from the Hyper-V model.
_CPUID = {
    0x0: (0xD, 0x756E6547, 0x6C65746E, 0x49656E69),  # "GenuineIntel"
    # EDX: FPU TSC MSR PAE CX8 APIC SEP PGE CMOV PAT CLFSH MMX FXSR SSE SSE2; ECX: SSE3 SSSE3 CX16 SSE4.1/2 POPCNT
    0x1: (0x000306A9, 0x00010800, 0x00982201, 0x0789A371),
    0x80000000: (0x80000008, 0, 0, 0),
    # LAHF; SYSCALL NX RDTSCP LM (Hyper-V passes RDTSCP through on the hosts the profiles describe)
    0x80000001: (0, 0, 0x1, 0x28100800),
    0x80000008: (0x00003028, 0, 0, 0),  # 40-bit physical, 48-bit virtual
}


_MISSING = object()  # cache sentinel: None is a valid answer (no function there)

class RunStop(Exception):
    """A run ended with a verdict (``verdict`` is the dict the scenario reports)."""

    def __init__(self, verdict: dict) -> None:
        super().__init__(verdict.get("verdict"))
        self.verdict = verdict


def scan_privileged(code: bytes, base: int) -> dict[str, list[int]]:
    """Addresses in ``code`` (loaded at ``base``) that may start an instruction the core must intercept.

    Returns ``{'rdmsr', 'wrmsr', 'rdtsc', 'rdtscp', 'hlt', 'iretq', 'cr8_write', 'cr8_read'}`` → sorted addresses.
    A byte match that is not an instruction start is harmless: a code hook there never fires.
    """
    out: dict[str, list[int]] = {k: [] for k in ("rdmsr", "wrmsr", "rdtsc", "rdtscp", "hlt", "iretq", "cr8_write",
                                                 "cr8_read")}
    for pat, key in ((b"\x0f\x32", "rdmsr"), (b"\x0f\x30", "wrmsr"), (b"\x0f\x31", "rdtsc"), (b"\x48\xcf", "iretq"),
                     (b"\x0f\x01\xf9", "rdtscp")):
        for m in re.finditer(re.escape(pat), code):
            out[key].append(base + m.start())
    for m in re.finditer(b"\xf4", code):
        out["hlt"].append(base + m.start())
    # MOV CR8: REX with R=1, 0F 22 (write) / 0F 20 (read), ModRM mod=11 reg=000.
    for m in re.finditer(rb"[\x44-\x47\x4c-\x4f]\x0f[\x20\x22][\xc0-\xc7]", code, re.S):
        out["cr8_write" if code[m.start() + 2] == 0x22 else "cr8_read"].append(base + m.start())
    return out


class Cpu:
    """One virtual processor running guest code on Unicorn.

    The machine sets ``io`` (``IoBus``), ``mmio`` (``MmioBus``), ``lapic``, ``hyperv`` (or ``None``); the kernel
    registers stub ranges with ``add_stub_range``; the loader announces executable ranges with ``add_code``.
    ``locate(address)`` (set by the scenario) names the guest function at an address.
    """

    def __init__(self, memory: GuestMemory, clock: VirtualClock, trace, io, mmio, lapic, hyperv=None) -> None:
        self.mem = memory
        self.clock = clock
        self.trace = trace
        self.io = io
        self.mmio = mmio
        self.lapic = lapic
        self.hyperv = hyperv
        self.uc = Uc(UC_ARCH_X86, UC_MODE_64)
        self.uc.mem_map_ptr(0, memory.ram.size, UC_PROT_ALL, memory.ram.address)
        self.cs = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self.instructions = 0
        self.tsc_offset = 0
        self.tsc_aux = 0  # IA32_TSC_AUX, what RDTSCP returns in ECX (the OS writes its processor number there)
        self._locate: Callable[[int], str | None] = lambda address: None
        self._block_insns: dict[tuple[int, int], int] = {}
        self._hooked: set[int] = set()
        self._stubs: list[tuple[int, int, Callable[[int], None]]] = []
        self._stop: BaseException | None = None
        self._after: list[Callable[[], None]] = []
        self._halted = False
        self._want_interrupt = False
        self.in_interrupt: list[tuple[int, int]] = []  # (vector, exit count at delivery)
        self.on_iret: Callable[[int, int], None] = lambda vector, exits: None
        self.on_deliver: Callable[[int], None] = lambda vector: None
        self.trap_va = 0
        self.call_depth = 0
        self._block_address = 0
        self._locate_cache: dict[int, str | None] = {}
        self.stub_ranges: list[tuple[int, int]] = []
        #: Hooks added through ``uc.hook_add`` by other parts of the model: (type, begin, end) as Unicorn takes them.
        self.foreign_hooks: list[tuple[int, int, int]] = []
        self._own_hook_add = self.uc.hook_add
        self.uc.hook_add = self._foreign_hook_add
        #: The polling-loop fast-forward engine (``gen2sim.fastforward``), or ``None`` when it is off.
        self.fastforward: FastForward | None = FastForward(self) if enabled_by_default() else None
        trace.locate = self._locate_now
        self._install_hooks()

    def set_fast_forward(self, enabled: bool) -> None:
        """Turn polling-loop fast-forward on or off (before the run starts)."""
        if not enabled:
            self.fastforward = None
        elif self.fastforward is None:
            self.fastforward = FastForward(self)

    # ------------------------------------------------------------------ setup
    def _install_hooks(self) -> None:
        uc = self.uc
        own = self._own_hook_add
        own(UC_HOOK_BLOCK, self._on_block)
        own(UC_HOOK_INSN, self._on_in, None, 1, 0, X.UC_X86_INS_IN)
        own(UC_HOOK_INSN, self._on_out, None, 1, 0, X.UC_X86_INS_OUT)
        own(UC_HOOK_INSN, self._on_cpuid, None, 1, 0, X.UC_X86_INS_CPUID)
        own(UC_HOOK_INTR, self._on_intr)
        own(UC_HOOK_MEM_UNMAPPED, self._on_unmapped)

    def _foreign_hook_add(self, htype, callback, user_data=None, begin=1, end=0, *rest):
        """``uc.hook_add`` as other parts of the model call it: recorded, so fast-forward never skips code or
        memory accesses a hook of theirs must see (a skipped iteration runs no hook)."""
        self.foreign_hooks.append((htype, begin, end))
        return self._own_hook_add(htype, callback, user_data, begin, end, *rest)

    def enable_paging(self, gdt_va: int, idt_va: int, gs_base: int) -> None:
        """Turn on long-mode paging with the model's tables, load GDT/IDT (selectors 0x10/0x18) and GS base."""
        uc = self.uc
        uc.reg_write(X.UC_X86_REG_CR3, self.mem.tables.pml4)
        uc.reg_write(X.UC_X86_REG_CR4, uc.reg_read(X.UC_X86_REG_CR4) | 0x20 | 0x80)  # PAE, PGE
        uc.msr_write(MSR_EFER, uc.msr_read(MSR_EFER) | 0x500)  # LME | LMA
        uc.reg_write(X.UC_X86_REG_CR0, uc.reg_read(X.UC_X86_REG_CR0) | 0x80000001)
        uc.reg_write(X.UC_X86_REG_GDTR, (0, gdt_va, 0x3F, 0))
        uc.reg_write(X.UC_X86_REG_IDTR, (0, idt_va, 0xFFF, 0))
        uc.reg_write(X.UC_X86_REG_CS, 0x10)
        for reg in (X.UC_X86_REG_SS, X.UC_X86_REG_DS, X.UC_X86_REG_ES):
            uc.reg_write(reg, 0x18)
        uc.msr_write(MSR_GS_BASE, gs_base)
        self.idt_va = idt_va

    def map_mmio(self, gpa: int, size: int) -> None:
        """Route guest-physical ``[gpa, gpa + size)`` to ``self.mmio`` (each access charged and recorded)."""
        def read(uc, offset, sz, _ud, base=gpa):
            return self._mmio(lambda: self.mmio.read(base + offset, sz), 0)

        def write(uc, offset, sz, value, _ud, base=gpa):
            self._mmio(lambda: self.mmio.write(base + offset, sz, value), None)

        self.uc.mmio_map(gpa, size, read, None, write, None)

    def _mmio(self, fn, default):
        self.clock.advance(COSTS["mmio"])
        try:
            return fn()
        except (GuestFault, MachineReset, ModelError, RunStop) as exc:
            self._halt_with(exc)
            return default

    def add_code(self, start: int, data: bytes) -> None:
        """Announce an executable range (its bytes ``data`` at ``start``): hook its privileged instructions."""
        found = scan_privileged(data, start)
        handlers = {"rdmsr": self._on_rdmsr, "wrmsr": self._on_wrmsr, "rdtsc": self._on_rdtsc, "rdtscp": self._on_rdtscp,
                    "hlt": self._on_hlt, "iretq": self._on_iretq, "cr8_write": self._on_cr8_write,
                    "cr8_read": self._on_cr8_read}
        for key, addrs in found.items():
            for a in addrs:
                if (a, key) in self._hooked:
                    continue
                self._hooked.add((a, key))
                self._own_hook_add(UC_HOOK_CODE, handlers[key], None, a, a)

    def add_stub_range(self, start: int, size: int, handler: Callable[[int], None]) -> None:
        """Run ``handler(address)`` whenever guest code executes an instruction in ``[start, start + size)``."""
        def hook(uc, address, sz, _ud):
            try:
                handler(address)
            except BaseException as exc:  # noqa: BLE001 - anything here ends the run with a verdict or error
                self._halt_with(exc)
        self._own_hook_add(UC_HOOK_CODE, hook, None, start, start + size - 1)
        self.stub_ranges.append((start, start + size))

    # ------------------------------------------------------------------ registers
    def reg(self, reg: int) -> int:
        """Read a Unicorn register."""
        return self.uc.reg_read(reg)

    def set_reg(self, reg: int, value: int) -> None:
        """Write a Unicorn register."""
        self.uc.reg_write(reg, value & 0xFFFF_FFFF_FFFF_FFFF)

    @property
    def rip(self) -> int:
        """Current instruction pointer."""
        return self.uc.reg_read(X.UC_X86_REG_RIP)

    @property
    def locate(self) -> Callable[[int], str | None]:
        """Names the guest function holding an address (set by the scenario from the link map or exports)."""
        return self._locate

    @locate.setter
    def locate(self, function: Callable[[int], str | None]) -> None:
        self._locate = function
        self._locate_cache.clear()

    def _locate_now(self) -> str | None:
        # Trace records name the function of the block being executed: the block hook already knows its
        # address, and reading RIP through Unicorn for every record would cost more than the rest of a record.
        address = self._block_address
        name = self._locate_cache.get(address, _MISSING)
        if name is _MISSING:
            name = self._locate_cache[address] = self.locate(address)
        return name

    def _halt_with(self, exc: BaseException) -> None:
        """Remember why the run must end and stop Unicorn (exceptions cannot cross Unicorn's C frames)."""
        if self._stop is None:
            self._stop = exc
        self.uc.emu_stop()

    def fault(self, kind: str, detail: str, address: int | None = None) -> RunStop:
        """A ``fault`` verdict at ``address`` (default: RIP)."""
        address = self.rip if address is None else address
        return RunStop({"verdict": "fault", "fault": {"kind": kind, "function": self.locate(address),
                                                      "address": address, "detail": detail}})

    # ------------------------------------------------------------------ time
    def _on_block(self, uc, address, size, _ud):
        ff = self.fastforward
        if ff is not None:
            try:
                ff.block(address, size)  # may skip whole iterations of a polling loop before this block
            except BaseException as exc:  # noqa: BLE001 - a model error must end the run, not vanish in Unicorn
                self._halt_with(exc)
                return
        self._block_address = address
        key = (address, size)
        n = self._block_insns.get(key)
        if n is None:
            try:
                code = self.mem.vread(address, size)
            except ModelError:
                code = b""
            n = max(1, sum(1 for _ in self.cs.disasm_lite(code, address)))
            self._block_insns[key] = n
        self.instructions += n
        clock = self.clock
        clock.now += n * COSTS["instruction"]
        deadline = clock.next_deadline()
        if deadline is not None and deadline <= clock.now:
            clock.advance_to(clock.now)
        if self.lapic.pending_vector() is not None:
            if uc.reg_read(X.UC_X86_REG_EFLAGS) & RFLAGS_IF:
                self._want_interrupt = True
                uc.emu_stop()
        if clock.now >= self._limit_ps or self.instructions >= self._insn_limit:
            uc.emu_stop()

    def charge(self, kind: str) -> None:
        """Add the fixed cost of one intercepted operation of ``kind``."""
        self.clock.advance(COSTS[kind])

    # ------------------------------------------------------------------ port I/O, CPUID
    def _on_in(self, uc, port, size, _ud):
        self.charge("port_io")
        try:
            return self.io.read(port, size)
        except BaseException as exc:  # noqa: BLE001
            self._halt_with(exc)
            return (1 << (8 * size)) - 1

    def _on_out(self, uc, port, size, value, _ud):
        self.charge("port_io")
        try:
            self.io.write(port, size, value)
        except BaseException as exc:  # noqa: BLE001
            self._halt_with(exc)

    def cpuid(self, leaf: int, subleaf: int) -> tuple[int, int, int, int]:
        """The CPUID answer of this machine (deterministic)."""
        if self.hyperv is not None and 0x40000000 <= leaf <= 0x400000FF:
            return tuple(self.hyperv.cpuid(leaf, subleaf))
        regs = _CPUID.get(leaf, (0, 0, 0, 0))
        if leaf == 1 and self.hyperv is not None:
            regs = (regs[0], regs[1], regs[2] | self.hyperv.hypervisor_present_bit(), regs[3])
        return regs

    def _on_cpuid(self, uc, _ud):
        self.charge("cpuid")
        leaf = uc.reg_read(X.UC_X86_REG_RAX) & 0xFFFFFFFF
        sub = uc.reg_read(X.UC_X86_REG_RCX) & 0xFFFFFFFF
        try:
            a, b, c, d = self.cpuid(leaf, sub)
        except BaseException as exc:  # noqa: BLE001
            self._halt_with(exc)
            return 1
        self.trace.record("cpuid", device="cpu", address=leaf, value=(d << 96) | (c << 64) | (b << 32) | a)
        for reg, v in ((X.UC_X86_REG_RAX, a), (X.UC_X86_REG_RBX, b), (X.UC_X86_REG_RCX, c), (X.UC_X86_REG_RDX, d)):
            uc.reg_write(reg, v)
        return 1

    # ------------------------------------------------------------------ MSRs
    def msr_device(self, msr: int) -> str:
        """Which model answers ``msr`` (for the trace)."""
        if self.hyperv is not None and self.hyperv.handles_msr(msr):
            return "hyperv"
        if msr in (MSR_APIC_BASE, MSR_TSC_DEADLINE) or 0x800 <= msr <= 0x8FF:
            return "lapic"
        return "cpu"

    def offers(self, leaf: int, register: int, mask: int) -> bool:
        """Whether this machine's CPUID ``leaf`` sets ``mask`` in ``register`` (0..3 = EAX..EDX)."""
        return bool(self.cpuid(leaf, 0)[register] & mask)

    def _check_apic_msr(self, msr: int, value: int | None) -> None:
        """x2APIC and the TSC-deadline timer exist only when CPUID offers them: otherwise their MSRs (and setting
        EXTD in the APIC base MSR) raise #GP, as on a processor without them (Intel SDM vol. 3A, 10.12 and 10.5.4)."""
        if msr == MSR_TSC_DEADLINE and not self.offers(1, 2, CPUID1_ECX_TSC_DEADLINE):
            raise GuestFault("#GP", f"MSR {msr:#x} (TSC deadline) but CPUID.1:ECX[24] does not offer the "
                                    "TSC-deadline timer")
        if 0x800 <= msr <= 0x8FF and not self.offers(1, 2, CPUID1_ECX_X2APIC):
            raise GuestFault("#GP", f"x2APIC MSR {msr:#x} but CPUID.1:ECX[21] does not offer x2APIC")
        if (msr == MSR_APIC_BASE and value is not None and value & APIC_BASE_EXTD
                and not self.offers(1, 2, CPUID1_ECX_X2APIC)):
            raise GuestFault("#GP", f"APIC base MSR write {value:#x} sets EXTD (x2APIC mode) but CPUID.1:ECX[21] "
                                    "does not offer x2APIC")

    def tsc(self) -> int:
        """The guest's time-stamp counter now (virtual time at the host profile's rate, plus WRMSR's offset)."""
        return (self.clock.tsc() + self.tsc_offset) & 0xFFFF_FFFF_FFFF_FFFF

    def rdmsr(self, msr: int) -> int:
        """Read an MSR through the owning model; unknown MSRs raise ``GuestFault('#GP')``."""
        dev = self.msr_device(msr)
        if dev == "hyperv":
            return self.hyperv.rdmsr(msr)
        if dev == "lapic":
            self._check_apic_msr(msr, None)
            return self.lapic.rdmsr(msr)
        if msr == MSR_TSC:
            return self.tsc()
        if msr == MSR_TSC_AUX and self.offers(0x80000001, 3, CPUID80000001_EDX_RDTSCP):
            return self.tsc_aux
        if msr in (MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE, MSR_EFER):
            return self.uc.msr_read(msr)
        raise GuestFault("#GP", f"RDMSR of unmodelled MSR {msr:#x}")

    def wrmsr(self, msr: int, value: int) -> None:
        """Write an MSR through the owning model; unknown MSRs raise ``GuestFault('#GP')``."""
        dev = self.msr_device(msr)
        if dev == "hyperv":
            self.hyperv.wrmsr(msr, value)
        elif dev == "lapic":
            self._check_apic_msr(msr, value)
            self.lapic.wrmsr(msr, value)
        elif msr == MSR_TSC_AUX and self.offers(0x80000001, 3, CPUID80000001_EDX_RDTSCP):
            if value >> 32:
                raise GuestFault("#GP", f"WRMSR {value:#x} to TSC_AUX sets reserved bits 63:32")
            self.tsc_aux = value
        elif msr == MSR_TSC:
            # Real CPUs allow it: keep an offset so later reads continue from the written value.
            self.tsc_offset = value - self.clock.tsc()
        elif msr in (MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE):
            self.uc.msr_write(msr, value)
        else:
            raise GuestFault("#GP", f"WRMSR {value:#x} to unmodelled MSR {msr:#x}")

    def _on_rdmsr(self, uc, address, size, _ud):
        self.charge("msr")
        msr = uc.reg_read(X.UC_X86_REG_RCX) & 0xFFFFFFFF
        try:
            value = self.rdmsr(msr)
        except GuestFault as exc:
            self.trace.record("msr_read", device=self.msr_device(msr), address=msr, detail=exc.vector)
            self._halt_with(self.fault(exc.vector, exc.detail, address))
            return
        except BaseException as exc:  # noqa: BLE001
            self._halt_with(exc)
            return
        self.trace.record("msr_read", device=self.msr_device(msr), address=msr, value=value)
        uc.reg_write(X.UC_X86_REG_RAX, value & 0xFFFFFFFF)
        uc.reg_write(X.UC_X86_REG_RDX, value >> 32)
        uc.reg_write(X.UC_X86_REG_RIP, address + 2)
        if self.hyperv is not None and self.hyperv.idle_requested:
            # GUEST_IDLE (TLFS): the read idles the VP like HLT; any interrupt wakes it, even with IF = 0.
            self.hyperv.idle_requested = False
            self._halted = "guest-idle"
            uc.emu_stop()

    def _on_wrmsr(self, uc, address, size, _ud):
        self.charge("msr")
        msr = uc.reg_read(X.UC_X86_REG_RCX) & 0xFFFFFFFF
        value = (uc.reg_read(X.UC_X86_REG_RDX) & 0xFFFFFFFF) << 32 | (uc.reg_read(X.UC_X86_REG_RAX) & 0xFFFFFFFF)
        self.trace.record("msr_write", device=self.msr_device(msr), address=msr, value=value)
        try:
            self.wrmsr(msr, value)
        except GuestFault as exc:
            self._halt_with(self.fault(exc.vector, exc.detail, address))
            return
        except BaseException as exc:  # noqa: BLE001
            self._halt_with(exc)
            return
        uc.reg_write(X.UC_X86_REG_RIP, address + 2)

    def _on_rdtsc(self, uc, address, size, _ud):
        value = self.tsc()
        uc.reg_write(X.UC_X86_REG_RAX, value & 0xFFFFFFFF)
        uc.reg_write(X.UC_X86_REG_RDX, value >> 32)
        uc.reg_write(X.UC_X86_REG_RIP, address + 2)

    def _on_rdtscp(self, uc, address, size, _ud):
        # Unicorn would answer from the host's counter; the model's TSC is virtual time at the profile's rate.
        if not self.offers(0x80000001, 3, CPUID80000001_EDX_RDTSCP):
            self._halt_with(self.fault("#UD", "RDTSCP but CPUID.80000001H:EDX[27] does not offer it", address))
            return
        value = self.tsc()
        uc.reg_write(X.UC_X86_REG_RAX, value & 0xFFFFFFFF)
        uc.reg_write(X.UC_X86_REG_RDX, value >> 32)
        uc.reg_write(X.UC_X86_REG_RCX, self.tsc_aux)
        uc.reg_write(X.UC_X86_REG_RIP, address + 3)

    # ------------------------------------------------------------------ CR8, HLT, IRETQ
    def _cr8_operand(self, address: int) -> int:
        rex, modrm = self.mem.vread(address, 4)[0], self.mem.vread(address, 4)[3]
        return (modrm & 7) | (8 if rex & 1 else 0)

    def _on_cr8_write(self, uc, address, size, _ud):
        value = uc.reg_read(_GPR[self._cr8_operand(address)]) & 0xF
        self.lapic.tpr = value << 4  # CR8 is the APIC TPR's priority class
        self.charge("cr8")
        uc.reg_write(X.UC_X86_REG_RIP, address + 4)
        # Lowering the priority may have made a pending interrupt deliverable.
        if self.lapic.pending_vector() is not None and uc.reg_read(X.UC_X86_REG_EFLAGS) & RFLAGS_IF:
            self._want_interrupt = True
            uc.emu_stop()

    def _on_cr8_read(self, uc, address, size, _ud):
        uc.reg_write(_GPR[self._cr8_operand(address)], self.lapic.tpr >> 4)
        uc.reg_write(X.UC_X86_REG_RIP, address + 4)

    def _on_hlt(self, uc, address, size, _ud):
        self.charge("hlt")
        self.trace.record("hlt", device="cpu", address=address)
        uc.reg_write(X.UC_X86_REG_RIP, address + 1)
        self._halted = True
        uc.emu_stop()

    def _on_iretq(self, uc, address, size, _ud):
        if self.in_interrupt:
            vector, exits = self.in_interrupt.pop()
            self.on_iret(vector, self.trace.exit_count() - exits)

    # ------------------------------------------------------------------ exceptions
    def _on_intr(self, uc, intno, _ud):
        name = _VECTOR_NAMES.get(intno, f"vector {intno}")
        kind = "unmapped" if intno == 14 else name
        detail = f"processor exception {name}"
        if intno == 14:
            detail += f" at {uc.reg_read(X.UC_X86_REG_CR2):#x}"
        self._halt_with(self.fault(kind, detail))

    def _on_unmapped(self, uc, access, address, size, value, _ud):
        self._halt_with(self.fault("unmapped", f"access to unbacked physical address {address:#x}"))
        return False

    # ------------------------------------------------------------------ interrupts
    def deliver(self, vector: int) -> None:
        """Deliver ``vector`` through the guest IDT: push SS, RSP, RFLAGS, CS, RIP on a 16-aligned stack."""
        uc = self.uc
        idtr = uc.reg_read(X.UC_X86_REG_IDTR)
        gate = self.mem.vread(idtr[1] + vector * 16, 16)
        lo, sel, _ist, attr, mid, hi = struct.unpack_from("<HHBBHI", gate)
        if not attr & 0x80:
            raise self.fault("unexpected-interrupt", f"vector {vector:#x} has no present IDT gate")
        handler = lo | (mid << 16) | (hi << 32)
        rsp = uc.reg_read(X.UC_X86_REG_RSP)
        rflags = uc.reg_read(X.UC_X86_REG_EFLAGS)
        new = (rsp & ~0xF) - 40
        frame = struct.pack("<QQQQQ", uc.reg_read(X.UC_X86_REG_RIP), 0x10, rflags, rsp, 0x18)
        self.mem.vwrite(new, frame)
        self.lapic.acknowledge(vector)
        uc.reg_write(X.UC_X86_REG_RSP, new)
        uc.reg_write(X.UC_X86_REG_EFLAGS, rflags & ~(RFLAGS_IF | 0x100))  # interrupt gate clears IF and TF
        uc.reg_write(X.UC_X86_REG_RIP, handler)
        self.trace.record("interrupt", device="cpu", address=handler, value=vector)
        self.in_interrupt.append((vector, self.trace.exit_count()))
        self.on_deliver(vector)

    # ------------------------------------------------------------------ running
    _limit_ps = 1 << 62
    _insn_limit = 1 << 62

    def call(self, address: int, args=(), *, limit_ps: int = 5 * PS_PER_S, max_instructions: int = 1 << 62,
             hang_info: Callable[[int, int], dict] | None = None) -> int:
        """Call guest function ``address`` with up to 8 integer ``args`` (Microsoft x64 ABI); returns RAX.

        Ends with ``RunStop`` when the guest faults, bug-checks, resets or makes no progress for ``limit_ps`` of
        virtual time (or executes ``max_instructions``); ``hang_info(start_ps, address)`` builds the hang verdict.
        """
        uc = self.uc
        saved = uc.context_save() if self.call_depth else None
        self.call_depth += 1
        outer_limits = (self._limit_ps, self._insn_limit)
        entry_rsp = uc.reg_read(X.UC_X86_REG_RSP)
        try:
            rsp = entry_rsp
            # Leave a red zone below the interrupted frame, then home space + stack args; at entry RSP + 8 is
            # 16-aligned (the return address was just "pushed") as the x64 ABI requires.
            rsp = ((rsp - 0x100 - 0x20 - 8 * max(0, len(args) - 4)) & ~0xF) - 8
            self.mem.vput(rsp, 8, self.trap_va)
            for i, value in enumerate(args):
                if i < 4:
                    uc.reg_write((X.UC_X86_REG_RCX, X.UC_X86_REG_RDX, X.UC_X86_REG_R8, X.UC_X86_REG_R9)[i],
                                 value & 0xFFFF_FFFF_FFFF_FFFF)
                else:
                    self.mem.vput(rsp + 8 + 8 * i, 8, value)
            uc.reg_write(X.UC_X86_REG_RSP, rsp)
            uc.reg_write(X.UC_X86_REG_RIP, address)
            start = self.clock.now
            self._limit_ps = min(start + limit_ps, self._limit_ps)
            self._insn_limit = min(self.instructions + max_instructions, self._insn_limit)
            result = self._run(start, address, hang_info)
        finally:
            self._limit_ps, self._insn_limit = outer_limits
            self.call_depth -= 1
            if saved is not None:
                uc.context_restore(saved)
            else:
                # A top-level call returns to the model, not to guest code: give back its frame, or every
                # call (one per idle loop iteration) would leak stack until the guest runs off its end.
                uc.reg_write(X.UC_X86_REG_RSP, entry_rsp)
        return result

    def _run(self, start: int, entry: int, hang_info) -> int:
        uc = self.uc
        while True:
            rip = uc.reg_read(X.UC_X86_REG_RIP)
            if rip == self.trap_va:
                return uc.reg_read(X.UC_X86_REG_RAX)
            self._halted = False
            self._want_interrupt = False
            try:
                uc.emu_start(rip, self.trap_va)
            except UcError as err:
                if err.errno == UC_ERR_INSN_INVALID and self._stop is None:
                    self._invalid_instruction()
                elif self._stop is None:
                    kind = "unmapped" if err.errno in (UC_ERR_READ_UNMAPPED, UC_ERR_WRITE_UNMAPPED,
                                                       UC_ERR_FETCH_UNMAPPED) else "emulation-error"
                    self._stop = self.fault(kind, str(err))
            self._run_after()
            if self._stop is not None:
                exc, self._stop = self._stop, None
                if isinstance(exc, GuestFault):
                    exc = self.fault(exc.vector, exc.detail)
                elif isinstance(exc, MachineReset):
                    exc = RunStop({"verdict": "reset", "reset": {"reason": exc.reason,
                                                                 "function": self.locate(self.rip)}})
                raise exc
            if self._halted:
                self._idle(start, hang_info)
            if uc.reg_read(X.UC_X86_REG_EFLAGS) & RFLAGS_IF:
                vector = self.lapic.pending_vector()
                if vector is not None:
                    self.deliver(vector)
            if self.clock.now >= self._limit_ps or self.instructions >= self._insn_limit:
                if hang_info is None:
                    raise RunStop({"verdict": "hang", "hang": {"function": self.locate(self.rip),
                                                               "address": self.rip, "polls": None,
                                                               "virtual_time_us": (self.clock.now - start) // PS_PER_US}})
                raise RunStop(hang_info(start, self.rip))

    def _run_after(self) -> None:
        while self._after and self._stop is None:
            action = self._after.pop(0)
            try:
                action()
            except BaseException as exc:  # noqa: BLE001
                self._stop = exc

    def after_stop(self, action: Callable[[], None]) -> None:
        """Run ``action`` once Unicorn has returned (it may call guest code with ``call``); stops emulation."""
        self._after.append(action)
        self.uc.emu_stop()

    def _idle(self, start: int, hang_info) -> None:
        """HLT: with IF=1 jump the clock to the next event until an interrupt is deliverable (GUEST_IDLE: also
        with IF=0, waking without delivery)."""
        uc = self.uc
        if not uc.reg_read(X.UC_X86_REG_EFLAGS) & RFLAGS_IF and self._halted != "guest-idle":
            raise RunStop({"verdict": "hang", "hang": {"function": self.locate(self.rip - 1), "address": self.rip - 1,
                                                       "polls": None, "detail": "HLT with interrupts disabled",
                                                       "virtual_time_us": (self.clock.now - start) // PS_PER_US}})
        while self.lapic.pending_vector() is None:
            deadline = self.clock.next_deadline()
            if deadline is None or deadline > self._limit_ps:
                raise RunStop({"verdict": "hang", "hang": {
                    "function": self.locate(self.rip - 1), "address": self.rip - 1, "polls": None,
                    "detail": "halted with no interrupt source armed" if deadline is None else
                    "halted past the time limit", "virtual_time_us": (self.clock.now - start) // PS_PER_US}})
            self.clock.advance_to(deadline)

    def _invalid_instruction(self) -> None:
        rip = self.rip
        try:
            code = self.mem.vread(rip, 3)
        except ModelError:
            code = b""
        if code in (b"\x0f\x01\xc1", b"\x0f\x01\xd9") and self.hyperv is not None and self.hyperv.hypercall_enabled:
            self.charge("hypercall")
            uc = self.uc
            try:
                status = self.hyperv.hypercall(uc.reg_read(X.UC_X86_REG_RCX), uc.reg_read(X.UC_X86_REG_RDX),
                                               uc.reg_read(X.UC_X86_REG_R8))
            except BaseException as exc:  # noqa: BLE001
                self._stop = exc
                return
            last = self.hyperv.last_hypercall or {}
            self.trace.record("hypercall", device="hyperv", address=last.get("code"), value=status,
                              detail=last.get("name"))
            uc.reg_write(X.UC_X86_REG_RAX, status)
            uc.reg_write(X.UC_X86_REG_RIP, rip + 3)
            return
        self._stop = self.fault("#UD", f"invalid instruction {code.hex() or '(unreadable)'}")
