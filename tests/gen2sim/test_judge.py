"""The verdict judges correctness: probe HALs built by hand that run but break one property are ``misbehaved``.

Each probe is the C below compiled with mingw-w64 with one ``-D`` defect: a local-APIC clock at vector 0xD1, the
TSC as performance counter and stall. Without a defect it is ``booted`` with every property kept; each defect is a
problem measured on the model before the verdict judged the boot (issue 11), and must break exactly the property
that names it, with its figure. The bounds come from ``specs/verdict_bounds.toml``; the HALs the project builds keep
their verdicts with every property kept.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
import build  # noqa: E402

from gen2sim.judge import PROPERTIES, bounds_text, judge, load_bounds  # noqa: E402
from gen2sim.scenario import boot  # noqa: E402
from specs import SpecError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TARGETS = ("reactos-amd64", "win7sp1-amd64")
IMPORTS = ("KeUpdateSystemTime", "KeSetTimeIncrement", "KeQueryTimeIncrement", "HalDispatchTable",
           "HalPrivateDispatchTable")

SOURCE = r"""
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

__declspec(dllimport) void KeUpdateSystemTime(void *TrapFrame, u64 Increment);
__declspec(dllimport) u32 KeSetTimeIncrement(u32 Max, u32 Min);
__declspec(dllimport) extern u8 HalDispatchTable[];
__declspec(dllimport) extern u8 HalPrivateDispatchTable[];
#ifdef BAD_VARIABLE
/* A kernel function declared as though it were a variable: the HAL reads the function's code. */
__declspec(dllimport) extern u64 KeQueryTimeIncrement;
#endif

#define APIC_REG(off) (*(volatile u32 *)(0xFFFFFFFFFFFE0000ULL + (off)))
#define INCREMENT 100000u            /* 10 ms in 100 ns units */
#define TSC_HZ 2400000000ULL
#ifdef FAST_CLOCK
#define APIC_COUNT 128000u           /* 0.64 ms at 200 MHz: 15.625 ticks per announced period */
#else
#define APIC_COUNT 2000000u          /* 10 ms at 200 MHz */
#endif

static inline u64 rdtsc(void) { u32 lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((u64)hi << 32) | lo; }
static inline u64 readgs(u32 off) { u64 v; __asm__ volatile("movq %%gs:(%1), %0" : "=r"(v) : "r"((u64)off)); return v; }

volatile u64 Sink;

void ProbeClockHandler(void)
{
    KeUpdateSystemTime(0, INCREMENT);
    APIC_REG(0xB0) = 0;
}

void ProbeClockInterrupt(void);
__asm__(".globl ProbeClockInterrupt\n"
        "ProbeClockInterrupt:\n"
        "  push %rax\n push %rcx\n push %rdx\n push %r8\n push %r9\n push %r10\n push %r11\n"
        "  push %rbp\n mov %rsp, %rbp\n and $-16, %rsp\n sub $32, %rsp\n"
        "  call ProbeClockHandler\n"
        "  mov %rbp, %rsp\n pop %rbp\n"
        "  pop %r11\n pop %r10\n pop %r9\n pop %r8\n pop %rdx\n pop %rcx\n pop %rax\n"
        "  iretq\n");

static u64 ProbeNoService(void) { return 0; }

__declspec(dllexport) void HalInitializeProcessor(u32 Number, void *LoaderBlock)
{
    APIC_REG(0xF0) = 0x1FF;
}

__declspec(dllexport) u8 HalInitSystem(u32 Phase, void *LoaderBlock)
{
    /* The Windows 7 kernel has no default for these dispatch-table slots: fill them. */
    static const u32 Public[] = {0x70, 0xA8, 0xB0}, Private[] = {0x50, 0x58, 0xA0, 0xA8};
    if (Phase != 0)
        return 1;
    for (unsigned i = 0; i < sizeof(Public) / sizeof(Public[0]); i++)
        *(void **)(HalDispatchTable + Public[i]) = (void *)ProbeNoService;
    for (unsigned i = 0; i < sizeof(Private) / sizeof(Private[0]); i++)
        *(void **)(HalPrivateDispatchTable + Private[i]) = (void *)ProbeNoService;
#ifdef BAD_VARIABLE
    Sink = KeQueryTimeIncrement;
#endif
    u8 *g = (u8 *)readgs(0x38) + 0xD1 * 16;
    u64 isr = (u64)ProbeClockInterrupt;
    *(u16 *)(g + 0) = (u16)isr;
    *(u16 *)(g + 2) = 0x10;
    *(u8 *)(g + 4) = 0;
    *(u8 *)(g + 5) = 0x8E;
    *(u16 *)(g + 6) = (u16)(isr >> 16);
    *(u32 *)(g + 8) = (u32)(isr >> 32);
    *(u32 *)(g + 12) = 0;
    KeSetTimeIncrement(INCREMENT, INCREMENT);
    APIC_REG(0x3E0) = 0xB;             /* divide by 1 */
    APIC_REG(0x320) = 0x20000 | 0xD1;  /* periodic */
    APIC_REG(0x380) = APIC_COUNT;
    return 1;
}

__declspec(dllexport) void HalProcessorIdle(void)
{
#ifdef SPIN_IDLE
    __asm__ volatile("cli; pause");
#else
    __asm__ volatile("sti; hlt");
#endif
}

#ifndef NO_QPC
__declspec(dllexport) u64 KeQueryPerformanceCounter(u64 *Frequency)
{
    if (Frequency)
        *Frequency = TSC_HZ;
#ifdef SLOW_COUNTER
    return rdtsc() / 2;
#else
    return rdtsc();
#endif
}
#endif

#ifndef NO_STALL
__declspec(dllexport) void KeStallExecutionProcessor(u32 Microseconds)
{
#ifdef SHORT_STALL
    u64 end = rdtsc() + (u64)Microseconds * (TSC_HZ / 1000000) / 2;
#else
    u64 end = rdtsc() + (u64)Microseconds * (TSC_HZ / 1000000);
#endif
    while (rdtsc() < end)
        ;
}
#endif
"""

pytestmark = pytest.mark.skipif(not build.toolchain_present(), reason="mingw-w64 not installed")


def build_probe(tmp_path: Path, defect: str | None) -> Path:
    """Compile the probe HAL with ``defect`` defined (None: the correct probe); returns its hal.dll."""
    return build.build_probe_hal(tmp_path / (defect or "correct").lower(), SOURCE, IMPORTS,
                                 *([defect] if defect else []))


def _props(result: dict) -> dict:
    return {p["property"]: p for p in result["properties"]}


@pytest.mark.parametrize("target", TARGETS)
def test_correct_probe_boots_keeping_every_property(tmp_path, target):
    r = boot(build_probe(tmp_path, None), target, "gen2").result
    assert r["verdict"] == "booted", r.get("misbehaved") or r.get("fault") or r.get("hang")
    assert r["misbehaved"] is None
    assert [p["property"] for p in r["properties"]] == list(PROPERTIES)
    assert all(p["ok"] and p["detail"] is None and p["reason"] for p in r["properties"])


# (defect, the property it breaks, text its detail must contain)
DEFECTS = [
    # The clock runs 15.625 times the period it announced: drift (15.625 - 1) * 1e6 ppm.
    ("FAST_CLOCK", ["clock"], "drift 14,625,000 ppm"),
    # The idle returns with interrupts off, never halting (and the clock never ticks in idle).
    ("SPIN_IDLE", ["clock", "idle"], "0 halts in"),
    # No performance counter: the scenario cannot measure it, and the kernel's boot export is missing.
    ("NO_QPC", ["qpc", "exports"], "not exported: KeQueryPerformanceCounter"),
    ("NO_STALL", ["stall", "exports"], "not exported: KeStallExecutionProcessor"),
    # The counter counts at half the frequency it reports.
    ("SLOW_COUNTER", ["qpc"], "rate error -500,000 ppm"),
    # The stall waits half the time asked.
    ("SHORT_STALL", ["stall"], "took 500"),
    # A kernel function read as a variable yields its code bytes (the stub's RET, 0xC3).
    ("BAD_VARIABLE", ["kernel-data"], "read KeQueryTimeIncrement as data"),
]


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("defect,broken,text", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_defective_probe_misbehaves_naming_the_property(tmp_path, target, defect, broken, text):
    r = boot(build_probe(tmp_path, defect), target, "gen2").result
    assert r["verdict"] == "misbehaved", r.get("fault") or r.get("hang") or r.get("bugcheck")
    assert r["misbehaved"]["broken"] == broken, r["misbehaved"]
    assert text in r["misbehaved"]["detail"], r["misbehaved"]["detail"]
    props = _props(r)
    assert [p for p in props if not props[p]["ok"]] == broken
    if defect == "BAD_VARIABLE":
        assert "0xc3c3" in r["misbehaved"]["detail"]


def test_spin_idle_gets_no_ticks(tmp_path):
    r = boot(build_probe(tmp_path, "SPIN_IDLE"), "win7sp1-amd64", "gen2").result
    clock = _props(r)["clock"]
    assert clock["figure"]["idle_ticks"] == 0 and "0 clock ticks in the idle window" in clock["detail"]


def test_fast_clock_figure_is_the_measured_drift(tmp_path):
    r = boot(build_probe(tmp_path, "FAST_CLOCK"), "reactos-amd64", "gen2").result
    assert r["drift_ppm"] == pytest.approx(14_625_000, rel=1e-4)
    assert _props(r)["clock"]["figure"]["drift_ppm"] == r["drift_ppm"]


def test_a_boot_that_does_not_run_to_its_end_is_not_judged(tmp_path):
    r = boot(build.build_minihal(tmp_path / "bc", "BUGCHECK"), "win7sp1-amd64", "gen2").result
    assert r["verdict"] == "bugcheck" and r["properties"] is None and r["misbehaved"] is None


def test_judge_unit_figures_at_the_bounds():
    b = load_bounds()
    result = {"drift_ppm": b.max_drift_ppm, "time_increment_100ns": {"announced": [156250, 10000]},
              "qpc": {"frequency": 10_000_000, "monotonic": True, "rate_error_ppm": -b.max_qpc_rate_error_ppm},
              "stall": {"requested_us": 1000, "measured_us": [1000 * (1 + b.max_stall_error_ppm / 1e6)]}}
    evidence = {"exports": list(b.boot_exports), "called": {n: 1 for n in b.boot_exports},
                "idle": {"calls": 10, "halts": 10, "ticks": 10}, "increments": [156250], "stub_reads": []}
    assert all(p["ok"] for p in judge(result, evidence, b))
    result["drift_ppm"] = -(b.max_drift_ppm + 1)
    result["qpc"]["monotonic"] = False
    evidence["increments"] = [156250, 200000]
    evidence["called"]["HalProcessorIdle"] = 0
    props = {p["property"]: p for p in judge(result, evidence, b)}
    assert "drift -501 ppm" in props["clock"]["detail"] and "200000" in props["clock"]["detail"]
    assert "went backwards" in props["qpc"]["detail"]
    assert props["exports"]["detail"] == "never called: HalProcessorIdle"


@pytest.mark.parametrize("edit,field", [
    (lambda t: t.replace("[stall]", "[stalls]"), "[stall]: missing section"),
    (lambda t: t.replace("max_drift_ppm = 500", "max_drift_ppm = \"500\""), "[clock].max_drift_ppm"),
    (lambda t: t.replace("max_error_ppm = 10000", "max_error_ppm = -1"), "[stall].max_error_ppm"),
    (lambda t: t.replace('reason = "KeStallExecutionProcessor must stall for the time asked"', 'reason = ""'),
     "[stall].reason"),
    (lambda t: t.replace("boot = [", "boot = 3\nx = ["), "[exports].boot"),
    (lambda t: t + "\n[[broken", "not valid TOML"),
])
def test_bad_bounds_file_names_file_and_field(tmp_path, edit, field):
    bad = tmp_path / "verdict_bounds.toml"
    bad.write_text(edit((REPO / "specs" / "verdict_bounds.toml").read_text()))
    with pytest.raises(SpecError) as err:
        load_bounds(bad)
    assert str(bad) in str(err.value) and field in str(err.value)


def test_bounds_are_printed_with_their_reasons_in_help():
    lines = bounds_text()
    assert [line.split(":")[0] for line in lines] == list(PROPERTIES)
    help_text = subprocess.run([sys.executable, "-m", "generator.cli", "boot", "--help"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout
    flat = " ".join(help_text.split())
    b = load_bounds()
    assert f"|drift| <= {b.max_drift_ppm:g} ppm" in flat and "misbehaved" in flat
    for prop in PROPERTIES:
        assert " ".join(b.reasons[prop].split()) in flat, prop


def test_report_shows_broken_properties_and_bounds(tmp_path):
    from gen2sim.report import summary, write_json
    from generator.report import make_report

    r = boot(build_probe(tmp_path, "FAST_CLOCK"), "win7sp1-amd64", "gen2").result
    assert "verdict: misbehaved  clock: drift 14,625,000 ppm (bound 500)" in summary(r)
    runs = tmp_path / "runs"
    runs.mkdir()
    write_json(r, runs / "boot-gen2.json")
    out, table = make_report([runs], tmp_path / "report")
    html = (tmp_path / "report" / "index.html").read_text()
    assert "misbehaved" in table and "clock: drift 14,625,000 ppm" in table
    assert "judged: clock" in html and "BROKEN" in html and "bound |drift| &lt;= 500 ppm" in html
    assert load_bounds().reasons["stall"] in html


@pytest.fixture(scope="module")
def project_hals(reference_build):
    """Our reference HAL and the gen2 variant of each target (built by SCons, no-op when up to date)."""
    sys.path.insert(0, str(REPO / "tests"))
    from conftest import run_scons

    run_scons(REPO, *[f"build/{t}/gen2/validation.json" for t in TARGETS])
    return {(t, flavor): REPO / "build" / t / flavor / "hal.dll" for t in TARGETS for flavor in ("reference", "gen2")}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("flavor,platform", [("reference", "gen1"), ("gen2", "gen1"), ("gen2", "gen2")])
def test_project_hals_keep_every_property(project_hals, target, flavor, platform):
    r = boot(project_hals[(target, flavor)], target, platform).result
    assert r["verdict"] == "booted", r.get("misbehaved") or r.get("fault") or r.get("hang") or r.get("bugcheck")
    assert all(p["ok"] for p in r["properties"]), r["properties"]
