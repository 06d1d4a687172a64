/*
 * halinit.c -- the HAL's entry points: HalInitializeProcessor and HalInitSystem phases 0 and 1.
 *
 * The kernel calls HalInitializeProcessor(0) first (per-processor state), then HalInitSystem(0) once the executive
 * starts, then HalInitSystem(1) when the system can allocate. The order of phase 0 matters: each step may depend
 * on the one before, and each legacy dependency fails at a recognisable point on a machine that lacks it.
 */
#include "halp.h"

/* Processors that ran HalInitializeProcessor (bit n = processor n). */
ULONG HalpActiveProcessors;

/* Phase 0 refuses a kernel whose PRCB layout version is not the one this HAL was built for. */
static VOID HalpCheckPrcbVersion(VOID)
{
    USHORT Found = HalpReadPrcbUshort(KPRCB_MajorVersion);

    if (Found != ABI_PRCB_MAJOR_VERSION)
        KeBugCheckEx(HALP_BUGCHECK_MISMATCHED_HAL, HALP_MISMATCH_PRCB_VERSION, Found, ABI_PRCB_MAJOR_VERSION, 0);
}

static BOOLEAN HalpInitSystemPhase0(PLOADER_PARAMETER_BLOCK LoaderBlock)
{
    HalpCheckPrcbVersion();

    /* ACPI: the loader hands over the root table; MADT and FADT describe the machine. */
    HalpAcpiInitializeTables(LoaderBlock);
    HalpParseApicTables();
    HalpVerifyPcatCompatibility();
    HalpParseFadt();

    /* Interrupt controllers: silence the 8259 pair, then route through the local APIC and IOAPIC. */
    HalpInitializeLegacyPICs();
    HalpConfigureLocalApicNmi();
    HalpInitializeIoApic();

    /* Time: stall calibration first (the clock set-up and everything after may stall), then the clock. */
    HalpCalibrateStallExecution();
    HalpInitializeClock();

    /* The kernel's dispatch tables: every service our entries call (ACPI tables, PCI configuration, the profile
     * timer's frequency) is ready now, and the kernel calls the slots it left empty only after phase 0. */
    HalpInstallDispatchEntries();

    DbgPrint("gen2hal: legacy-PC APIC HAL (%s), TSC %I64u Hz, APIC timer %lu Hz\n",
             TARGET_NAME, HalpTscFrequency, HalpApicTimerFrequency);
    return TRUE;
}

static BOOLEAN HalpInitSystemPhase1(PLOADER_PARAMETER_BLOCK LoaderBlock)
{
    UNREFERENCED_PARAMETER(LoaderBlock);

    /* Put the platform into ACPI mode (the SMI_CMD handshake). */
    HalpAcpiEnable();
    return TRUE;
}

BOOLEAN NTAPI HalInitSystem(ULONG Phase, PLOADER_PARAMETER_BLOCK LoaderBlock)
{
    switch (Phase)
    {
    case 0:
        return HalpInitSystemPhase0(LoaderBlock);
    case 1:
        return HalpInitSystemPhase1(LoaderBlock);
    default:
        /* No other phase exists; FALSE makes the kernel report HAL initialisation failure. */
        return FALSE;
    }
}

VOID NTAPI HalInitializeProcessor(ULONG ProcessorNumber, PLOADER_PARAMETER_BLOCK LoaderBlock)
{
    UNREFERENCED_PARAMETER(LoaderBlock);

    /* A uniprocessor HAL: the kernel only starts further processors through HalStartNextProcessor, which
     * always answers FALSE, so a second processor reaching this point is a contract violation. */
    if (ProcessorNumber >= HALP_MAX_PROCESSORS)
        KeBugCheckEx(HALP_BUGCHECK_HAL_INITIALIZATION_FAILED, HALP_INIT_SECOND_PROCESSOR, ProcessorNumber, 0, 0);

    /* Until calibration, stalls assume the conventional initial count (ticks per microsecond). */
    HalpWritePcrUlong(KPCR_StallScaleFactor, ABI_INITIAL_STALL_COUNT);

    HalpActiveProcessors |= 1UL << ProcessorNumber;
    HalpInitializeLocalApic(ProcessorNumber);
}
