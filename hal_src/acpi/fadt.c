/*
 * fadt.c -- the Fixed ACPI Description Table and the switch into ACPI mode.
 *
 * We keep a private copy of the FADT (zero-filled past the end of older, shorter revisions), so every field
 * reads as "absent" rather than as whatever follows a short table in memory.
 */
#include "halp.h"

/* How long the platform may take to set SCI_EN after ACPI_ENABLE: 1 s, polled every 10 us (the SMI handler
 * usually answers within microseconds, and this wait runs with interrupts off). */
#define HALP_ACPI_ENABLE_WAIT_STEPS 100000
#define HALP_ACPI_ENABLE_STEP_US 10

ACPI_FADT HalpFadt;

VOID HalpParseFadt(VOID)
{
    PACPI_FADT Fadt = HalpAcpiGetTable(ACPI_FADT_SIGNATURE);
    ULONG Length;

    if (Fadt == NULL)
        KeBugCheckEx(HALP_BUGCHECK_ACPI_BIOS_ERROR, HALP_ACPI_TABLE_MISSING, ACPI_FADT_SIGNATURE, 0, 0);

    Length = Fadt->Header.Length < sizeof(HalpFadt) ? Fadt->Header.Length : sizeof(HalpFadt);
    RtlZeroMemory(&HalpFadt, sizeof(HalpFadt));
    RtlCopyMemory(&HalpFadt, Fadt, Length);
}

/* Enter ACPI mode the way ACPI 1.0-era platforms expect: if SCI_EN is not yet set, write ACPI_ENABLE to the
 * SMI command port, then wait for the firmware to set SCI_EN in PM1a control. Both registers are taken from the
 * legacy 32-bit FADT fields. When SCI_EN cannot be seen within the bound, stop as acpi.sys does. */
VOID HalpAcpiEnable(VOID)
{
    USHORT Pm1aCnt = (USHORT)HalpFadt.Pm1aCntBlk;
    ULONG Step;

    /* No PM1a control port in the legacy field: SCI_EN can never be read, so ACPI mode cannot be confirmed. */
    if (Pm1aCnt == 0)
        KeBugCheckEx(HALP_BUGCHECK_ACPI_BIOS_ERROR, HALP_ACPI_ENABLE_FAILED, HALP_ACPI_ENABLE_FAILED_SCI_EN, 0, 0);

    if (HalpReadPortUshort(Pm1aCnt) & ACPI_PM1_CNT_SCI_EN)
        return;     /* the firmware already handed over */

    if (HalpFadt.SmiCmd != 0)
        HalpWritePortUchar((USHORT)HalpFadt.SmiCmd, HalpFadt.AcpiEnable);

    for (Step = 0; Step < HALP_ACPI_ENABLE_WAIT_STEPS; Step++)
    {
        if (HalpReadPortUshort(Pm1aCnt) & ACPI_PM1_CNT_SCI_EN)
            return;
        KeStallExecutionProcessor(HALP_ACPI_ENABLE_STEP_US);
    }
    KeBugCheckEx(HALP_BUGCHECK_ACPI_BIOS_ERROR, HALP_ACPI_ENABLE_FAILED, HALP_ACPI_ENABLE_FAILED_SCI_EN, 0, 0);
}
