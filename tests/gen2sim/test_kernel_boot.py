"""The kernel's side of the boot: loader block contents, the boot steps' IRQL and interrupt state, a HAL importing
every name of its target's list, the PCR/PRCB watch, and upstream ReactOS's own hal.dll when it has been built."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
import build  # noqa: E402

import specs  # noqa: E402
from gen2sim.kernel import catalog, kernel_class  # noqa: E402
from gen2sim.kernel.loaderblock import LOADER_FREE  # noqa: E402
from gen2sim.machine import Machine  # noqa: E402
from gen2sim.scenario import boot  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TARGETS = ("reactos-amd64", "win7sp1-amd64")
needs_cc = pytest.mark.skipif(not build.toolchain_present(), reason="mingw-w64 not installed")


def kernel(target: str, platform: str = "gen2"):
    m = Machine(platform)
    tgt = specs.load_target(target)
    k = kernel_class(target)(tgt, m.memory, m.cpu, m.trace, m.clock, acpi_root_gpa=m.acpi.root_gpa, acpi=m.acpi)
    return m, k


def descriptors(k) -> list[tuple[int, int, int]]:
    """(base page, pages, type) of the loader block's memory descriptor list, in list order."""
    head = k.loader_block + k.s("loader_block", "MemoryDescriptorListHead")
    out, entry = [], k.mem.vu(head, 8)
    while entry != head and len(out) < 100:
        d = entry - k.L.off("memory_allocation_descriptor", "ListEntry")
        out.append(tuple(k.get(d, "memory_allocation_descriptor", f)
                         for f in ("BasePage", "PageCount", "MemoryType")))
        entry = k.mem.vu(entry, 8)
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_memory_descriptors_describe_ram_and_leave_free_low_pages(target):
    m, k = kernel(target)
    ds = descriptors(k)
    assert [d[0] for d in ds] == sorted(d[0] for d in ds)  # ascending, as the loader hands them over
    assert sum(d[1] for d in ds) == m.memory.ram.size // 0x1000  # every page described once
    assert all(a[0] + a[1] == b[0] for a, b in zip(ds, ds[1:]))
    free = [d for d in ds if d[2] == LOADER_FREE]
    # A HAL carving memory below 1 MB (ReactOS's x86 BIOS pages) and below 16 MB finds some; page 0 is not free.
    assert any(d[0] >= 1 and d[0] + d[1] <= 0x100 and d[1] >= 2 for d in free)
    assert any(0x100 <= d[0] and d[0] + d[1] <= 0x1000 for d in free)
    pml4 = m.memory.tables.pml4 >> 12
    acpi = m.acpi.root_gpa >> 12
    for page in (0, pml4, acpi, (m.memory.translate(k.pcr) or 0) >> 12):
        owner = next(d for d in ds if d[0] <= page < d[0] + d[1])
        assert owner[2] != LOADER_FREE, (page, owner)


@pytest.mark.parametrize("target", TARGETS)
def test_acpi_bios_node_carries_xsdt_and_e820(target):
    m, k = kernel(target)
    node = k.acpi_bios_node
    data = k.get(node, "configuration_component_data", "ConfigurationData")
    length = k.get(node, "configuration_component_data", "ConfigurationDataLength")
    multi = data + 0x1C
    count = k.mem.vu(multi + 8, 8)
    assert k.mem.vu(multi, 8) == m.acpi.root_gpa
    assert m.memory.read(m.acpi.root_gpa, 4) == b"XSDT"
    assert length == 0x1C + 16 + 24 * count
    entries = [tuple(k.mem.vu(multi + 16 + 24 * i + 8 * j, 8) for j in range(3)) for i in range(count)]
    assert sum(e[1] for e in entries) == m.memory.ram.size
    acpi_entry = next(e for e in entries if e[2] == 3)
    assert acpi_entry[0] <= m.acpi.root_gpa < acpi_entry[0] + acpi_entry[1]


def test_reactos_prcb_and_loader_block_fields():
    m, k = kernel("reactos-amd64")
    assert k.get(k.prcb, "kprcb", "BuildType") == 2  # a free uniprocessor kernel ([kernel.boot])
    assert k.get(k.prcb, "kprcb", "FeatureBits") & 0x2  # KF_RDTSC: the model's CPUID has a TSC
    assert k.get(k.prcb, "kprcb", "FeatureBits") & 0x80000000  # KF_NX_ENABLED, as KiInitializeCpu sets it
    assert k.get(k.prcb, "kprcb", "SetMember") == 1
    assert k.get(k.loader_block, "loader_block", "Prcb") == k.prcb
    assert k.get(k.loader_block, "loader_block", "Thread") == k.thread
    assert k.get(k.loader_block, "loader_block", "MachineType") == 0
    assert k.get(k.pcr, "kpcr", "Irql") == 0  # KiInitializePcr: PASSIVE_LEVEL


STATE_HAL = r"""
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned char u8;
__declspec(dllimport) u32 DbgPrint(const char *Format, ...);
static void Report(const char *Step)
{
    u64 cr8, flags;
    __asm__ volatile("mov %%cr8, %0" : "=r"(cr8));
    __asm__ volatile("pushfq; popq %0" : "=r"(flags));
    DbgPrint("%s %d %d", Step, (int)cr8, (int)((flags >> 9) & 1));
}
__declspec(dllexport) void HalInitializeProcessor(u32 Number, void *LoaderBlock) { Report("P"); }
__declspec(dllexport) u8 HalInitSystem(u32 Phase, void *LoaderBlock) { Report(Phase ? "S1" : "S0"); return 1; }
"""


def compile_hal(tmp_path: Path, source: str, imports: dict[str, list[str]], extra: list[Path] = (),
                data: frozenset = frozenset()) -> Path:
    """Compile ``source`` (+ ``extra`` C files) into hal.dll against import libraries of ``imports`` by module."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "hal.c").write_text(source)
    libs = []
    for module, names in sorted(imports.items()):
        stem = module.rsplit(".", 1)[0].lower()
        body = "".join(f"{n} DATA\n" if n in data else f"{n}\n" for n in names)
        (tmp_path / f"{stem}.def").write_text(f"LIBRARY {module}\nEXPORTS\n{body}")
        subprocess.run([build.DLLTOOL, "-d", str(tmp_path / f"{stem}.def"), "-l", str(tmp_path / f"lib{stem}.a"),
                        "-D", module], check=True)
        libs.append(str(tmp_path / f"lib{stem}.a"))
    dll = tmp_path / "hal.dll"
    subprocess.run([build.CC, "-O2", "-ffreestanding", "-nostdlib", "-mno-red-zone", "-fno-stack-protector",
                    "-fno-builtin", "-w", "-shared", "-Wl,--subsystem,native", "-Wl,--image-base,0xFFFFF80001600000",
                    "-Wl,--entry,HalInitSystem", "-Wl,--no-insert-timestamp", f"-Wl,-Map,{tmp_path / 'hal.map'}",
                    str(tmp_path / "hal.c"), *map(str, extra), *libs, "-o", str(dll)], check=True)
    return dll


@needs_cc
@pytest.mark.parametrize("target,expected,stop", [
    # ReactOS: HalInitializeProcessor at PASSIVE_LEVEL, HalInitSystem(0) at APC_LEVEL (interrupts off), phase 1 at
    # PASSIVE_LEVEL with interrupts on (kiinit.c, krnlinit.c); this HAL has no idle routine, so the boot stops there.
    ("reactos-amd64", ["P 0 0", "S0 1 0", "S1 0 1"], "missing-export"),
    # Windows 7: HIGH_LEVEL, interrupts off; this HAL fills no dispatch slot, so the kernel stops after phase 0.
    ("win7sp1-amd64", ["P 15 0", "S0 15 0"], "dispatch-slot-empty"),
])
def test_boot_steps_run_at_the_kernels_irql(tmp_path, target, expected, stop):
    dll = compile_hal(tmp_path, STATE_HAL, {"ntoskrnl.exe": ["DbgPrint"]})
    r = boot(dll, target, "gen2").result
    assert r["debug_output"] == expected
    assert r["verdict"] == "fault" and r["fault"]["kind"] == stop


PCR_HAL = r"""
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned char u8;
volatile u64 Sink;
__declspec(dllexport) void HalInitializeProcessor(u32 Number, void *LoaderBlock) { }
__declspec(dllexport) u8 HalInitSystem(u32 Phase, void *LoaderBlock)
{
    u64 v;
    __asm__ volatile("movq %%gs:0x20, %0" : "=r"(v));   /* KPCR.CurrentPrcb: described */
    __asm__ volatile("movl %%gs:0x40, %k0" : "=r"(v));  /* KPCR+0x40: not described */
    __asm__ volatile("movl %0, %%gs:0x1F00" : : "r"(7));  /* KPRCB+0x1D80: not described */
    Sink = v;
    return 1;
}
"""


@needs_cc
@pytest.mark.parametrize("target", TARGETS)
def test_pcr_fields_outside_the_description_are_recorded(tmp_path, target):
    r = boot(compile_hal(tmp_path, PCR_HAL, {}), target, "gen2").result
    seen = {(p["structure"], p["offset"], p["access"]) for p in r["kernel"]["pcr_undescribed"]}
    prcb = specs.load_target(target).structs["kpcr"].offset("Prcb")
    assert ("KPCR", 0x40, "read") in seen
    assert ("KPRCB", 0x1F00 - prcb, "write") in seen
    assert not any(p["offset"] == 0x20 and p["structure"] == "KPCR" for p in r["kernel"]["pcr_undescribed"])
    assert r["kernel"]["pcr_undescribed_count"] == len(seen)


@needs_cc
@pytest.mark.parametrize("target", TARGETS)
def test_hal_importing_every_name_of_the_list_boots(tmp_path, target):
    """minihal plus a table holding the address of every name of the target's HAL import list."""
    tgt = specs.load_target(target)
    names = catalog.hal_imports(tgt)
    assert names
    table = tmp_path / "all.c"
    table.write_text("".join(f"__declspec(dllimport) extern char {n}[];\n" for n in names)
                     + "void *volatile AllImportsSink;\n__attribute__((used)) void TouchAllImports(void)\n{\n"
                     + "".join(f"    AllImportsSink = (void *){n};\n" for n in names) + "}\n")
    by_module: dict[str, list[str]] = {}
    for n in set(names) | {"KeUpdateSystemTime", "KeSetTimeIncrement", "KeBugCheckEx", "KeSaveStateForHibernate",
                           "KeRegisterBugCheckCallback", "DbgPrint", "HalDispatchTable", "HalPrivateDispatchTable"}:
        by_module.setdefault(tgt.module_of(n), []).append(n)
    dll = compile_hal(tmp_path, (build.HERE / "minihal.c").read_text(), {m: sorted(v) for m, v in by_module.items()},
                      [table], data=tgt.data_imports)
    r = boot(dll, target, "gen2", seconds=0.1).result
    assert r["verdict"] == "booted", r.get("fault") or r.get("hang") or r.get("load_error")
    import pefile

    pe = pefile.PE(str(dll))
    imported = {i.name.decode() for d in pe.DIRECTORY_ENTRY_IMPORT for i in d.imports}
    assert set(names) <= imported


@pytest.fixture(scope="module")
def upstream(reactos_build):
    """Upstream ReactOS's hal.dll, built from a copy of the subset (conftest's ``reactos_build``)."""
    return reactos_build / "upstream" / "hal.dll"


def test_upstream_reactos_hal_boots_on_gen1(upstream):
    r = boot(upstream, "reactos-amd64", "gen1").result
    assert r["verdict"] == "booted", r.get("bugcheck") or r.get("fault") or r.get("hang")
    assert r["ticks"] > 0 and abs(r["drift_ppm"]) < 10
    kern = r["kernel"]
    # HalReportResourceUsage reports under the HAL's name (hal/halx86/acpi/halacpi.c HalName); HaliInitPnpDriver
    # creates \Driver\ACPI_HAL, whose bus reports the ACPI driver's PDO ACPI_HAL\PNP0C08 (acpi/halpnpdd.c).
    assert kern["phase1"]["HalReportResourceUsage"]["hal_name"] == "ACPI Compatible Eisa/Isa HAL"
    assert "\\Driver\\ACPI_HAL" in kern["pnp"]["drivers"]
    children = kern["pnp"]["devices"][0]["children"]
    assert children[0]["device_id"] == "ACPI_HAL\\PNP0C08"
    assert kern["cpu_mhz"] and kern["calls_reached"]["KeFindConfigurationNextEntry"] >= 1
    assert kern["return_to_firmware"]["ended"] == "reset"


def test_upstream_reactos_hal_hangs_in_tsc_calibration_on_gen2(upstream):
    """Generation 2's RTC raises no periodic interrupt: HalpInitializeTsc waits for samples that never come."""
    r = boot(upstream, "reactos-amd64", "gen2", hang_limit_s=0.5).result
    assert r["verdict"] == "hang", r
    assert r["hang"]["function"] == "HalpInitializeTsc" and r["hang"]["called"] == "HalInitSystem"


@pytest.mark.parametrize("target,steps", [
    ("reactos-amd64", {"HalInitializeProcessor": (0, False), "HalInitSystem0": (1, False), "HalInitSystem1": (0, True)}),
    ("win7sp1-amd64", {"HalInitializeProcessor": (15, False), "HalInitSystem0": (15, False),
                       "HalInitSystem1": (15, False)}),
])
def test_boot_state_from_the_description(target, steps):
    _m, k = kernel(target)
    assert {s: (k.boot_irql(s), k.boot_interrupts(s)) for s in steps} == steps
