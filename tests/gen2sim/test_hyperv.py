"""The Hyper-V interface description (specs/hyperv.toml) and the model of it (gen2sim/hyperv.py), checked
against the TLFS rules: hypercall page, reference TSC page, synthetic timers, SynIC messages, crash MSRs,
privilege-gated MSRs.  Memory and local APIC are small fakes; time is virtual only."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from gen2sim import clock as clk
from gen2sim.clock import VirtualClock
from gen2sim.errors import GuestFault, MachineReset, ModelError
from gen2sim.hvspec import SPEC_PATH, load_hyperv_spec
from gen2sim.hyperv import PS_PER_100NS, HyperV
from gen2sim.trace import Trace

SPEC = load_hyperv_spec()
MSR = {m.name: m.number for m in SPEC.msrs}

SIMP_GPA = 0x0010_0000
SIEFP_GPA = 0x0010_1000
HYPERCALL_GPA = 0x0020_0000
TSC_GPA = 0x0020_1000

# STIMER_CONFIG bits (TLFS timers), written out so the tests do not just echo the spec back to the model.
ENABLE, PERIODIC, LAZY, AUTO_ENABLE, DIRECT = 1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 12


def vec(v: int) -> int:
    return v << 4


def sintx(n: int) -> int:
    return n << 16


class FakeMemory:
    """Sparse guest-physical memory."""

    def __init__(self) -> None:
        self.pages: dict[int, bytearray] = {}
        self.writes: list[tuple[int, int]] = []

    def _page(self, pfn: int) -> bytearray:
        return self.pages.setdefault(pfn, bytearray(4096))

    def read(self, gpa: int, size: int) -> bytes:
        out = bytearray()
        for a in range(gpa, gpa + size):
            out.append(self._page(a >> 12)[a & 0xFFF])
        return bytes(out)

    def write(self, gpa: int, data: bytes) -> None:
        self.writes.append((gpa, len(data)))
        for i, b in enumerate(data):
            a = gpa + i
            self._page(a >> 12)[a & 0xFFF] = b

    def u32(self, gpa: int) -> int:
        return struct.unpack("<I", self.read(gpa, 4))[0]

    def u64(self, gpa: int) -> int:
        return struct.unpack("<Q", self.read(gpa, 8))[0]


class FakeLapic:
    """Records every vector raised, with the virtual time it was raised at."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.raised: list[tuple[int, int, bool]] = []
        self.eois = 0
        self.tpr = 0
        self.apic_id = 0

    def raise_vector(self, vector: int, level: bool = False) -> None:
        self.raised.append((self.clock.now, vector, level))

    def eoi(self) -> None:
        self.eois += 1


class Machine:
    def __init__(self, cleared=frozenset()) -> None:
        self.clock = VirtualClock()
        self.trace = Trace(self.clock)
        self.mem = FakeMemory()
        self.lapic = FakeLapic(self.clock)
        self.hv = HyperV(self.clock, self.trace, self.mem, self.lapic, cleared=frozenset(cleared))

    def rd(self, name: str) -> int:
        return self.hv.rdmsr(MSR[name])

    def wr(self, name: str, value: int) -> None:
        self.hv.wrmsr(MSR[name], value)

    def enable_synic(self, sint: int, vector: int, masked: bool = False) -> None:
        self.wr("SIMP", SIMP_GPA | 1)
        self.wr("SIEFP", SIEFP_GPA | 1)
        self.wr(f"SINT{sint}", vector | (1 << 16 if masked else 0))
        self.wr("SCONTROL", 1)

    def slot(self, sint: int) -> int:
        return SIMP_GPA + 256 * sint


@pytest.fixture
def m() -> Machine:
    return Machine()


def expect_gp(fn, *args, match: str | None = None) -> GuestFault:
    with pytest.raises(GuestFault) as exc:
        fn(*args)
    assert exc.value.vector == "#GP"
    if match is not None:
        assert match in exc.value.detail
    return exc.value


# ================================================================================================ the spec
def test_spec_is_the_projects_own_file():
    repo = Path(__file__).resolve().parents[2]
    assert SPEC_PATH == repo / "specs" / "hyperv.toml"
    assert SPEC.path == SPEC_PATH
    assert "/work/shared" not in str(SPEC_PATH)


def test_spec_has_a_source_for_every_entry():
    raw = SPEC.raw
    checked = 0
    for key, value in raw.items():
        entries = value if isinstance(value, list) else [value]
        for entry in entries:
            assert isinstance(entry, dict), key
            assert isinstance(entry.get("source"), str) and entry["source"].strip(), f"{key}: {entry.get('name')}"
            checked += 1
            if key != "defaults":
                # Facts name the TLFS page or the Linux (or openvmm) file they come from.
                assert any(w in entry["source"] for w in ("TLFS", "Linux", "openvmm")), entry["source"]
    # Model defaults are marked as such, never passed off as facts.
    assert raw["defaults"]["model_default"] is True
    assert "model default" in raw["defaults"]["source"]
    assert "model default" in raw["defaults"]["version"]["source"]
    assert checked > 150


def test_spec_lookups_by_name():
    assert SPEC.msr("STIMER0_CONFIG").number == 0x400000B0
    assert SPEC.msr("STIMER3_COUNT").number == 0x400000B7
    assert SPEC.msr("SINT15").number == 0x4000009F
    assert SPEC.msr("CRASH_CTL").number == 0x40000105
    assert SPEC.msr("TIME_REF_COUNT").access == "ro"
    assert SPEC.msr("EOM").access == "wo" and SPEC.msr("EOM").on_read == "zero"
    assert SPEC.msr("TSC_FREQUENCY").requires == ("AccessFrequencyRegs", "FrequencyMsrsAvailable")
    assert SPEC.message_type("HvMessageTimerExpired") == 0x80000010
    assert SPEC.hypercall("HvCallNotifyLongSpinWait").code == 0x0008
    assert SPEC.hv_status("HV_STATUS_INVALID_HYPERCALL_CODE") == 2
    assert SPEC.layout("STIMER_CONFIG").field("Sintx").lsb == 16
    assert SPEC.layout("CRASH_CTL").field("CrashNotify").lsb == 63
    assert SPEC.structure("HV_TIMER_MESSAGE_PAYLOAD").member("DeliveryTime").offset == 16
    assert SPEC.structure("REFERENCE_TSC_PAGE").member("TscScale").offset == 8
    assert SPEC.section("reference_tsc")["invalid_sequence"] == 0
    assert SPEC.raw["signatures"]["vendor"] == "Microsoft Hv"
    assert SPEC.raw["signatures"]["interface"] == "Hv#1"
    with pytest.raises(KeyError):
        SPEC.msr("NO_SUCH_MSR")


@pytest.mark.parametrize(
    "name, bits",
    [
        ("reference-tsc-page", {("eax", 9)}),
        ("reference-counter", {("eax", 1)}),
        ("frequency-msrs", {("eax", 11), ("edx", 8)}),
        ("synthetic-timers", {("eax", 3)}),
        ("direct-mode", {("edx", 19)}),
        ("synic", {("eax", 2)}),
        ("crash-msrs", {("edx", 10)}),
        ("hypercall", {("eax", 5)}),
        ("vp-index", {("eax", 6)}),
        ("apic-msrs", {("eax", 4)}),
        ("guest-idle", {("eax", 10), ("edx", 5)}),
    ],
)
def test_feature_table_maps_names_to_tlfs_bits(name, bits):
    f = SPEC.feature(name)
    assert {(b.register, b.bit) for b in f.clears} == bits
    assert all(b.leaf == 0x40000003 for b in f.clears)


def test_spec_grants_match_msr_preconditions():
    for b in SPEC.cpuid_bits.values():
        for g in b.grants:
            assert b.name in SPEC.msr(g).requires


def test_default_model_never_grants_an_unmodelled_msr(m):
    for msr in SPEC.msrs:
        if not msr.modelled:
            assert not all(m.hv.granted(r) for r in msr.requires), msr.name


# ================================================================================================ CPUID
def _sig(*regs: int) -> str:
    return b"".join(struct.pack("<I", r) for r in regs).decode()


def test_cpuid_signatures_and_defaults(m):
    eax, ebx, ecx, edx = m.hv.cpuid(0x40000000, 0)
    assert eax >= 0x40000005 and _sig(ebx, ecx, edx) == "Microsoft Hv"
    assert _sig(m.hv.cpuid(0x40000001, 0)[0]) == "Hv#1"
    assert m.hv.hypervisor_present_bit() == 1 << 31
    assert m.hv.cpuid(1, 0)[2] == 1 << 31
    priv, _, _, feat = m.hv.cpuid(0x40000003, 0)
    assert priv == sum(1 << b for b in (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11))
    for b in (5, 8, 10, 19):
        assert feat & (1 << b)
    build, version = m.hv.cpuid(0x40000002, 0)[:2]
    assert build == 22621 and version >> 16 == 10
    # Leaves above the maximum read zero.
    assert m.hv.cpuid(eax + 1, 0) == (0, 0, 0, 0)
    with pytest.raises(ModelError):
        m.hv.cpuid(0x80000000, 0)


@pytest.mark.parametrize("feature", [f.name for f in SPEC.features if f.name != "hypervisor"])
def test_cleared_feature_clears_cpuid_and_gps_its_msrs(feature):
    mach = Machine(cleared={feature})
    cleared = SPEC.feature(feature).clears
    for b in cleared:
        assert not mach.hv.cpuid(b.leaf, 0)[b.register_index] & b.mask
        assert not mach.hv.granted(b.name)
    names = {b.name for b in cleared}
    hit = 0
    for msr in SPEC.msrs:
        gone = names.intersection(msr.requires)
        if not gone:
            continue
        hit += 1
        expect_gp(mach.hv.rdmsr, msr.number, match="not granted")
        e = expect_gp(mach.hv.wrmsr, msr.number, 0, match="not granted")
        assert f"{msr.number:#010x}" in e.detail and e.detail.endswith(" clear")
    if feature not in ("direct-mode", "lazy-eoi"):  # these gate behaviour (direct timers, a hint), not an MSR
        assert hit, feature
    # Everything else stays as it was.
    other = Machine()
    for leaf in range(0x40000000, 0x40000007):
        for i, (a, b) in enumerate(zip(mach.hv.cpuid(leaf, 0), other.hv.cpuid(leaf, 0))):
            expected = b
            for bit in cleared:
                if bit.leaf == leaf and bit.register_index == i:
                    expected &= ~bit.mask
            assert a == expected


def test_clearing_the_hypervisor_hides_everything():
    mach = Machine(cleared={"hypervisor"})
    assert mach.hv.hypervisor_present_bit() == 0
    assert mach.hv.cpuid(0x40000000, 0) == (0, 0, 0, 0)
    for msr in SPEC.msrs:
        expect_gp(mach.hv.rdmsr, msr.number)


def test_unknown_feature_name_is_a_model_error():
    with pytest.raises(ModelError, match="no-such-thing"):
        Machine(cleared={"no-such-thing"})


def test_gp_detail_names_the_privilege():
    mach = Machine(cleared={"reference-tsc-page"})
    expect_gp(mach.hv.rdmsr, 0x40000021, match="MSR 0x40000021 not granted: AccessPartitionReferenceTsc clear")


# ================================================================================ every MSR of the spec
def test_every_spec_msr_is_reachable_or_gps_per_precondition(m):
    """The spec and the model agree: granted MSRs answer per their access, the others #GP."""
    for msr in SPEC.msrs:
        granted = all(m.hv.granted(r) for r in msr.requires)
        if not granted:
            expect_gp(m.hv.rdmsr, msr.number, match="not granted")
            expect_gp(m.hv.wrmsr, msr.number, msr.reset, match="not granted")
            continue
        assert msr.modelled, msr.name
        if msr.access == "wo":
            if msr.on_read == "zero":
                assert m.hv.rdmsr(msr.number) == 0
            else:
                expect_gp(m.hv.rdmsr, msr.number)
        else:
            value = m.hv.rdmsr(msr.number)
            assert 0 <= value < 1 << 64
            if msr.name not in ("TIME_REF_COUNT", "VP_RUNTIME", "TSC_FREQUENCY", "APIC_FREQUENCY", "CRASH_CTL",
                                "TPR"):
                assert value == msr.reset, msr.name  # TLFS reset values
        if msr.access == "ro":
            expect_gp(m.hv.wrmsr, msr.number, 0, match="read-only")
        else:
            if msr.name == "RESET":
                m.hv.wrmsr(msr.number, 0)  # only 1 resets
            else:
                m.hv.wrmsr(msr.number, msr.reset)


@pytest.mark.parametrize("number", [0x40000004, 0x40000050, 0x400000A0, 0x400000FF, 0x40000110, 0x400001FF])
def test_unknown_synthetic_msr_gps(m, number):
    expect_gp(m.hv.rdmsr, number, match="not implemented")
    expect_gp(m.hv.wrmsr, number, 0, match="not implemented")


def test_msr_outside_the_synthetic_range_is_not_ours(m):
    assert not m.hv.handles_msr(0x1B)
    with pytest.raises(ModelError):
        m.hv.rdmsr(0x40000200)


# ===================================================================================== simple registers
def test_read_only_registers(m):
    assert m.rd("VP_INDEX") == 0
    assert m.rd("SVERSION") == 1
    assert m.rd("TSC_FREQUENCY") == clk.TSC_HZ
    assert m.rd("APIC_FREQUENCY") == clk.APIC_TIMER_HZ
    m.clock.advance(123_456_789)
    assert m.rd("TIME_REF_COUNT") == m.clock.reference_100ns() == 1234
    for name in ("VP_INDEX", "SVERSION", "TIME_REF_COUNT", "TSC_FREQUENCY", "APIC_FREQUENCY", "GUEST_IDLE"):
        expect_gp(m.wr, name, 1)


def test_guest_idle_read_requests_idle(m):
    assert not m.hv.idle_requested
    assert m.rd("GUEST_IDLE") == 0
    assert m.hv.idle_requested
    assert m.trace.records[-1]["kind"] == "note"


def test_reset_msr(m):
    assert m.rd("RESET") == 0
    m.wr("RESET", 0)
    with pytest.raises(MachineReset):
        m.wr("RESET", 1)


def test_eom_reads_zero_eoi_is_write_only(m):
    assert m.rd("EOM") == 0
    expect_gp(m.rd, "EOI")
    m.wr("EOI", 0)
    assert m.lapic.eois == 1
    expect_gp(m.wr, "EOI", 1 << 32, match="reserved")


def test_tpr_and_icr_self_ipi(m):
    m.wr("TPR", 0x20)
    assert m.lapic.tpr == 0x20 and m.rd("TPR") == 0x20
    m.wr("ICR", (1 << 18) | 0x41)  # shorthand "self", fixed, vector 0x41
    assert [v for _, v, _ in m.lapic.raised] == [0x41]
    m.wr("ICR", (3 << 18) | 0x42)  # all excluding self: nobody else in a one-VP partition
    assert len(m.lapic.raised) == 1
    assert m.rd("ICR") == (3 << 18) | 0x42


def test_vp_assist_page_register(m):
    m.wr("VP_ASSIST_PAGE", 0x30_0000 | 0x7FE | 1)
    assert m.rd("VP_ASSIST_PAGE") == 0x30_0000 | 0x7FE | 1
    assert not m.mem.writes  # zeroing the page is the guest's job; the model writes nothing


# ========================================================================================= hypercall page
def test_hypercall_enable_ignored_while_guest_os_id_is_zero(m):
    m.wr("HYPERCALL", HYPERCALL_GPA | 1)
    assert m.rd("HYPERCALL") & 1 == 0
    assert m.mem.read(HYPERCALL_GPA, 4) == bytes(4)
    with pytest.raises(GuestFault) as exc:
        m.hv.hypercall(0x0008 | 1 << 16, 0, 0)
    assert exc.value.vector == "#UD"


def test_hypercall_page_bytes_and_disable_on_guest_os_id_zero(m):
    windows_nt_10 = (1 << 48) | (4 << 40) | (10 << 32) | 19041  # vendor Microsoft, OS Windows NT, 10.0.19041
    m.wr("GUEST_OS_ID", windows_nt_10)
    assert m.rd("GUEST_OS_ID") == windows_nt_10
    m.wr("HYPERCALL", HYPERCALL_GPA | (0x3FC) | 1)  # bits 11:2 are RsvdP: preserved
    assert m.rd("HYPERCALL") == HYPERCALL_GPA | 0x3FC | 1
    page = m.mem.read(HYPERCALL_GPA, 4096)
    assert page[:4] == bytes([0x0F, 0x01, 0xC1, 0xC3])  # VMCALL; RET
    assert page[4:] == bytes([0xCC]) * 4092  # INT3
    m.wr("GUEST_OS_ID", 0)  # TLFS: zeroing the identity disables the page
    assert m.rd("HYPERCALL") & 1 == 0


def test_hypercalls(m):
    m.wr("GUEST_OS_ID", 1 << 48)
    m.wr("HYPERCALL", HYPERCALL_GPA | 1)
    fast = 1 << 16
    assert m.hv.hypercall(0x0008 | fast, 100, 0) == 0
    assert m.hv.last_hypercall["name"] == "HvCallNotifyLongSpinWait"
    assert m.hv.hypercall(0x0008, 0x5000, 0) == 0  # memory-based, aligned input
    assert m.hv.hypercall(0x0008, 0x5004, 0) == 4  # HV_STATUS_INVALID_ALIGNMENT
    assert m.hv.hypercall(0x0008 | fast | (1 << 32), 0, 0) == 3  # rep count on a simple call
    assert m.hv.hypercall(0x0008 | fast | (1 << 60), 0, 0) == 3  # RsvdZ bit
    assert m.hv.hypercall(0x0002 | fast, 0, 0) == 2  # known but not modelled
    assert m.hv.hypercall(0x7777, 0, 0) == 2
    assert not [r for r in m.trace.records if r["kind"] == "hypercall"]  # the core records the exit


# =================================================================================== reference TSC page
def _lcg(seed: int):
    while True:
        seed = (seed * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        yield seed >> 33


def test_reference_tsc_page_formula_matches_time_ref_count(m):
    m.wr("REFERENCE_TSC", TSC_GPA | 0x7FE | 1)
    assert m.rd("REFERENCE_TSC") == TSC_GPA | 0x7FE | 1  # bits 11:1 preserved
    seq = m.mem.u32(TSC_GPA)
    scale = m.mem.u64(TSC_GPA + 8)
    offset = struct.unpack("<q", m.mem.read(TSC_GPA + 16, 8))[0]
    assert seq != 0
    assert scale == (10**7 << 64) // clk.TSC_HZ and offset == 0
    steps = _lcg(7)
    for _ in range(2000):
        m.clock.advance(next(steps) % 50_000_000_000 + 1)  # up to 50 ms, irregular
        page_time = ((m.clock.tsc() * scale) >> 64) + offset
        assert 0 <= m.rd("TIME_REF_COUNT") - page_time <= 1
    # Far into the run (one simulated day) the formula still holds.
    m.clock.advance(86_400 * clk.PS_PER_S)
    assert 0 <= m.rd("TIME_REF_COUNT") - (((m.clock.tsc() * scale) >> 64) + offset) <= 1


def _read_reference_time(m: Machine) -> tuple[int, str]:
    """The TLFS read protocol, as a guest runs it."""
    while True:
        start = m.mem.u32(TSC_GPA)
        if start == 0:
            return m.rd("TIME_REF_COUNT"), "msr"
        tsc = m.clock.tsc()
        scale, offset = m.mem.u64(TSC_GPA + 8), struct.unpack("<q", m.mem.read(TSC_GPA + 16, 8))[0]
        if m.mem.u32(TSC_GPA) == start:
            return ((tsc * scale) >> 64) + offset, "page"


def test_reference_tsc_sequence_protocol(m):
    m.wr("REFERENCE_TSC", TSC_GPA | 1)
    m.clock.advance(10**9)
    assert _read_reference_time(m)[1] == "page"
    first = m.mem.u32(TSC_GPA)
    m.hv.invalidate_reference_tsc_page()
    assert m.mem.u32(TSC_GPA) == 0  # 0, not 0xFFFFFFFF, means invalid
    t, how = _read_reference_time(m)
    assert how == "msr" and t == m.clock.reference_100ns()
    m.hv.refresh_reference_tsc_page()
    assert m.mem.u32(TSC_GPA) not in (0, first)  # a new sequence; 0 is never used for a valid page
    assert _read_reference_time(m)[1] == "page"


# ==================================================================================== synthetic timers
def test_direct_mode_timer_fires_exactly_at_the_deadline(m):
    m.clock.advance(3_333_333)  # not on a 100 ns boundary
    deadline = m.rd("TIME_REF_COUNT") + 10_000  # 1 ms ahead, absolute
    m.wr("STIMER0_CONFIG", AUTO_ENABLE | DIRECT | vec(0xED))
    assert m.rd("STIMER0_CONFIG") & ENABLE == 0
    m.wr("STIMER0_COUNT", deadline)
    assert m.rd("STIMER0_CONFIG") & ENABLE  # AutoEnable
    m.clock.advance_to(deadline * PS_PER_100NS - 1)
    assert m.lapic.raised == []  # never early
    m.clock.advance(1)
    assert m.lapic.raised == [(deadline * PS_PER_100NS, 0xED, False)]  # edge, needs an EOI
    assert m.rd("TIME_REF_COUNT") == deadline
    assert m.rd("STIMER0_CONFIG") & ENABLE == 0  # a one-shot disables itself
    rec = [r for r in m.trace.records if r["kind"] == "interrupt"]
    assert rec and rec[0]["value"] == 0xED


def test_one_shot_count_is_absolute_reference_time(m):
    target = 5_000_000  # 0.5 s after partition creation
    m.clock.advance(123 * clk.PS_PER_US)
    m.wr("STIMER1_COUNT", target)
    m.clock.advance(77 * clk.PS_PER_US)  # enabling later does not move the expiry
    m.wr("STIMER1_CONFIG", ENABLE | DIRECT | vec(0x50))
    m.clock.advance_to(clk.PS_PER_S)
    assert [t for t, _, _ in m.lapic.raised] == [target * PS_PER_100NS]


def test_one_shot_in_the_past_fires_immediately(m):
    m.clock.advance(clk.PS_PER_S)
    now = m.clock.now
    m.wr("STIMER2_CONFIG", AUTO_ENABLE | DIRECT | vec(0x60))
    m.wr("STIMER2_COUNT", 5)
    m.clock.advance(1)
    assert m.lapic.raised == [(now, 0x60, False)]


def test_periodic_timer_period_is_exact_over_1000_periods(m):
    m.clock.advance(987_654_321)  # start at an odd instant
    period = 156_250  # 15.625 ms
    m.wr("STIMER0_COUNT", period)
    m.wr("STIMER0_CONFIG", ENABLE | PERIODIC | DIRECT | vec(0xD1))
    start = m.clock.now
    step = _lcg(3)
    end = start + 1000 * period * PS_PER_100NS
    while m.clock.now < end:  # irregular advances, as a CPU would make
        m.clock.advance_to(min(end, m.clock.now + next(step) % (40 * clk.PS_PER_US * 1000)))
    times = [t for t, _, _ in m.lapic.raised]
    assert times == [start + k * period * PS_PER_100NS for k in range(1, 1001)]
    assert m.rd("STIMER0_CONFIG") & ENABLE  # periodic timers stay enabled
    m.wr("STIMER0_COUNT", 0)  # writing 0 stops it regardless of AutoEnable
    assert m.rd("STIMER0_CONFIG") & ENABLE == 0
    m.clock.advance(period * PS_PER_100NS * 3)
    assert len(m.lapic.raised) == 1000


def test_enable_with_zero_count_stays_disabled(m):
    m.wr("STIMER3_CONFIG", ENABLE | DIRECT | vec(0x70))
    assert m.rd("STIMER3_CONFIG") & ENABLE == 0
    assert m.clock.next_deadline() is None


def test_stimer_reserved_bits_and_direct_vector(m):
    expect_gp(m.wr, "STIMER0_CONFIG", 1 << 13, match="reserved")
    expect_gp(m.wr, "STIMER0_CONFIG", 1 << 20, match="reserved")
    expect_gp(m.wr, "STIMER0_CONFIG", AUTO_ENABLE | DIRECT | vec(5))


def test_direct_mode_cleared_gps_but_message_mode_works():
    mach = Machine(cleared={"direct-mode"})
    expect_gp(mach.wr, "STIMER0_CONFIG", AUTO_ENABLE | DIRECT | vec(0xED), match="DirectSyntheticTimersAvailable")
    mach.enable_synic(2, 0xF3)
    mach.wr("STIMER0_CONFIG", AUTO_ENABLE | sintx(2))
    mach.wr("STIMER0_COUNT", 1000)
    mach.clock.advance_to(1000 * PS_PER_100NS)
    assert [v for _, v, _ in mach.lapic.raised] == [0xF3]


def test_message_mode_sint0_disables_the_timer(m):
    m.enable_synic(0, 0x40)
    m.wr("STIMER0_COUNT", 100)
    m.wr("STIMER0_CONFIG", ENABLE | sintx(0))
    assert m.rd("STIMER0_CONFIG") & ENABLE == 0  # TLFS: disabled immediately
    m.wr("STIMER0_CONFIG", AUTO_ENABLE | sintx(0))
    m.wr("STIMER0_COUNT", 200)
    assert m.rd("STIMER0_CONFIG") & ENABLE == 0
    m.clock.advance(clk.PS_PER_S)
    assert m.lapic.raised == [] and m.mem.u32(m.slot(0)) == 0


def test_message_mode_layout_and_eom_redelivery(m):
    m.enable_synic(2, 0x50)
    t1 = 20_000
    m.wr("STIMER1_CONFIG", AUTO_ENABLE | sintx(2))
    m.wr("STIMER1_COUNT", t1)
    m.clock.advance_to(t1 * PS_PER_100NS)
    slot = m.slot(2)
    assert m.mem.u32(slot) == 0x80000010  # HvMessageTimerExpired
    assert m.mem.read(slot + 4, 1)[0] == 24  # payload size
    assert m.mem.read(slot + 5, 1)[0] == 0  # no MessagePending
    assert m.mem.u64(slot + 8) == 0  # timer messages have no origination ID
    assert m.mem.u32(slot + 16) == 1  # TimerIndex
    assert m.mem.u32(slot + 20) == 0
    assert m.mem.u64(slot + 24) == t1  # ExpirationTime
    assert m.mem.u64(slot + 32) == t1  # DeliveryTime
    assert m.lapic.raised == [(t1 * PS_PER_100NS, 0x50, False)]

    # A second timer on the same SINT expires while the slot is still full: queued, MessagePending set.
    t2 = 30_000
    m.wr("STIMER2_CONFIG", AUTO_ENABLE | sintx(2))
    m.wr("STIMER2_COUNT", t2)
    m.clock.advance_to(t2 * PS_PER_100NS)
    assert len(m.lapic.raised) == 1
    assert m.mem.u32(slot + 16) == 1 and m.mem.read(slot + 5, 1)[0] & 1

    # The guest empties the slot, sees MessagePending, writes EOM: the queued message arrives.
    m.clock.advance(5 * clk.PS_PER_US)
    m.mem.write(slot, struct.pack("<I", 0))
    m.wr("EOM", 0)
    assert m.mem.u32(slot) == 0x80000010 and m.mem.u32(slot + 16) == 2
    assert m.mem.read(slot + 5, 1)[0] == 0
    assert m.mem.u64(slot + 24) == t2
    assert m.mem.u64(slot + 32) == m.clock.reference_100ns() > t2
    assert [v for _, v, _ in m.lapic.raised] == [0x50, 0x50]


def test_message_to_masked_sint_is_written_without_interrupt(m):
    m.enable_synic(3, 0x60, masked=True)
    m.wr("STIMER0_CONFIG", AUTO_ENABLE | sintx(3))
    m.wr("STIMER0_COUNT", 500)
    m.clock.advance_to(500 * PS_PER_100NS)
    assert m.mem.u32(m.slot(3)) == 0x80000010
    assert m.lapic.raised == []  # TLFS: the interrupt is lost while masked


def test_message_waits_while_synic_disabled(m):
    m.wr("SINT4", 0x61)
    m.wr("SIMP", SIMP_GPA | 1)
    m.wr("STIMER0_CONFIG", AUTO_ENABLE | sintx(4))
    m.wr("STIMER0_COUNT", 500)
    m.clock.advance_to(600 * PS_PER_100NS)
    assert m.mem.u32(m.slot(4)) == 0 and m.lapic.raised == []
    m.wr("SCONTROL", 1)
    m.wr("EOM", 0)  # a rescan trigger
    assert m.mem.u32(m.slot(4)) == 0x80000010
    assert m.mem.u64(m.slot(4) + 24) == 500 and m.mem.u64(m.slot(4) + 32) == 600


def test_periodic_message_timer_coalesces_while_queued(m):
    m.enable_synic(5, 0x70)
    m.wr("STIMER0_COUNT", 1000)
    m.wr("STIMER0_CONFIG", ENABLE | PERIODIC | sintx(5))
    m.clock.advance(10 * 1000 * PS_PER_100NS)  # the guest never empties the slot
    assert len(m.lapic.raised) == 1
    t = m.hv.timers[0]
    assert t.expirations == 10 and t.queued is not None and t.missed == 8


def test_sint_vector_rules(m):
    expect_gp(m.wr, "SINT2", 15)  # unmasked, vector < 16
    m.wr("SINT2", (1 << 16) | 0)  # masked with vector 0 is the reset value
    m.wr("SINT2", 0x10)
    assert m.rd("SINT2") == 0x10
    assert m.rd("SINT7") == 0x10000


def test_simp_page_is_cleared_on_first_enable(m):
    m.mem.write(SIMP_GPA, b"\xAA" * 4096)
    m.wr("SIMP", SIMP_GPA | 0x10 | 1)
    assert m.rd("SIMP") == SIMP_GPA | 0x10 | 1
    assert m.mem.read(SIMP_GPA, 4096) == bytes(4096)


# ============================================================================================ crash MSRs
def test_crash_ctl_reports_capabilities_and_records_a_crash(m):
    assert m.rd("CRASH_CTL") == (1 << 63) | (1 << 62)  # CrashNotify | CrashMessage
    params = [0x7E, 0xC0000005, 0xFFFFF800_12345678, 0xFFFFD000_00001000, 0]
    for i, p in enumerate(params):
        m.wr(f"CRASH_P{i}", p)
        assert m.rd(f"CRASH_P{i}") == p
    assert m.hv.crash is None
    m.wr("CRASH_CTL", 1 << 63)
    assert m.hv.crash == {"p": params, "ctl": 1 << 63}
    assert m.trace.records[-1]["kind"] == "note" and m.trace.records[-1]["detail"] == "crash reported"


def test_crash_message(m):
    m.mem.write(0x9000, b"bugcheck 0x7E")
    m.wr("CRASH_P3", 0x9000)
    m.wr("CRASH_P4", 13)
    m.wr("CRASH_CTL", (1 << 63) | (1 << 62))
    assert m.hv.crash["message"] == b"bugcheck 0x7E"


def test_crash_ctl_without_notify_records_nothing(m):
    m.wr("CRASH_CTL", 0)
    assert m.hv.crash is None


# ================================================================== reference TSC page: boot options, TSC rate
def test_tsc_page_invalid_from_the_start(m):
    m.hv.plan_reference_tsc_page(invalid=True)
    m.wr("REFERENCE_TSC", TSC_GPA | 1)
    assert m.mem.u32(TSC_GPA) == 0
    m.clock.advance(10**9)
    t, how = _read_reference_time(m)
    assert how == "msr" and t == m.clock.reference_100ns()


def test_tsc_sequence_changes_at_the_planned_times(m):
    m.hv.plan_reference_tsc_page(sequence_changes_us=(100, 250))
    m.wr("REFERENCE_TSC", TSC_GPA | 1)
    seen = []
    for t_us in (99, 100, 249, 250, 400):
        m.clock.advance_to(t_us * clk.PS_PER_US)
        seen.append(m.mem.u32(TSC_GPA))
        assert _read_reference_time(m)[1] == "page"
    assert seen[0] == seen[1] - 1 and seen[1] == seen[2] and seen[3] == seen[2] + 1 == seen[4]
    assert [r["value"] for r in m.trace.records if r.get("detail") == "reference TSC sequence changed"] == seen[1::2][:2]


def test_invalid_tsc_page_becomes_valid_at_a_sequence_change(m):
    m.hv.plan_reference_tsc_page(invalid=True, sequence_changes_us=(50,))
    m.wr("REFERENCE_TSC", TSC_GPA | 1)
    assert _read_reference_time(m)[1] == "msr"
    m.clock.advance_to(60 * clk.PS_PER_US)
    assert m.mem.u32(TSC_GPA) != 0 and _read_reference_time(m)[1] == "page"


@pytest.mark.parametrize("times", [(100, 50), (-1,), (10, 10)])
def test_tsc_sequence_change_times_must_increase(m, times):
    with pytest.raises(ModelError, match="increasing"):
        m.hv.plan_reference_tsc_page(sequence_changes_us=times)


@pytest.mark.parametrize("tsc_hz", [2_400_000_000, 2_592_000_000, 3_000_000_000])
def test_tsc_rate_is_the_models_parameter(tsc_hz):
    m = Machine()
    m.clock.tsc_hz = tsc_hz
    assert m.rd("TSC_FREQUENCY") == tsc_hz
    m.wr("REFERENCE_TSC", TSC_GPA | 1)
    assert m.mem.u64(TSC_GPA + 8) == (10**7 << 64) // tsc_hz
    m.clock.advance(7 * clk.PS_PER_S + 123_456_789)
    page_time = (m.clock.tsc() * m.mem.u64(TSC_GPA + 8)) >> 64
    assert 0 <= m.rd("TIME_REF_COUNT") - page_time <= 1


def test_default_tsc_rate_is_2_4_ghz(m):
    assert m.rd("TSC_FREQUENCY") == 2_400_000_000


# ======================================================================== GUEST_IDLE on the real CPU core
def _idle_code(arm_timer: bool) -> str:
    """IF = 0, optionally a one-shot 1 ms local-APIC timer on vector 0x40, then one GUEST_IDLE read."""
    timer = """
        mov dword ptr [rbx+0x3e0], 0xb
        mov dword ptr [rbx+0x320], 0x40
        mov dword ptr [rbx+0x380], 200000""" if arm_timer else ""
    return f"""
        cli
        movabs rbx, 0xFFFFFFFFFFFE0000
        mov dword ptr [rbx+0xf0], 0x1ff{timer}
        mov ecx, {MSR['GUEST_IDLE']:#x}
        rdmsr
        ret"""


def test_guest_idle_idles_like_hlt_and_wakes_with_interrupts_off(tmp_path):
    from tests.gen2sim.test_cpu import build, harness

    if not build.toolchain_present():
        pytest.skip("mingw-w64 not installed")
    m, _k, va = harness(tmp_path, _idle_code(arm_timer=True))
    start, instructions = m.clock.now, m.cpu.instructions
    m.cpu.call(va)
    elapsed_us = (m.clock.now - start) / clk.PS_PER_US
    assert 1000 <= elapsed_us < 1100  # the clock jumped to the timer: idle, not a spin
    assert m.cpu.instructions - instructions < 20
    assert m.lapic.irr_vectors() == [0x40] and m.lapic.isr_vectors() == []  # woken, not delivered (IF = 0)


def test_guest_idle_without_an_interrupt_source_is_a_hang(tmp_path):
    from gen2sim.cpu import RunStop
    from tests.gen2sim.test_cpu import build, harness

    if not build.toolchain_present():
        pytest.skip("mingw-w64 not installed")
    m, _k, va = harness(tmp_path, _idle_code(arm_timer=False))
    with pytest.raises(RunStop) as info:
        m.cpu.call(va)
    assert info.value.verdict["verdict"] == "hang"
    assert "no interrupt source" in info.value.verdict["hang"]["detail"]
