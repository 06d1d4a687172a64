/*
 * pmtimer.c -- the ACPI power-management timer: a free-running 3.579545 MHz counter, 24 or 32 bits wide.
 *
 * We read it at the port in the legacy 32-bit FADT field PM_TMR_BLK and extend it to a monotonic 64-bit count.
 * The extension sees every wrap as long as the timer is read at least once per period (4.7 s for 24 bits, 20 min
 * for 32); the clock interrupt reads it on every tick for that reason.
 */
#include "halp.h"

ULONG64 HalpReadPmTimer(VOID)
{
    static ULONG Last;              /* raw value at the previous read */
    static ULONG64 Extended;        /* extended count at the previous read */
    USHORT Port = (USHORT)HalpFadt.PmTmrBlk;
    ULONG Mask = (HalpFadt.Flags & ACPI_FADT_TMR_VAL_EXT) ? 0xFFFFFFFFUL : 0x00FFFFFFUL;
    ULONG64 Flags, Total;
    ULONG Raw;

    if (Port == 0)
        KeBugCheckEx(HALP_BUGCHECK_ACPI_BIOS_ERROR, HALP_ACPI_NO_PM_TIMER, 0, 0, 0);

    /* Read and fold in one step, so an interrupt handler reading the timer cannot interleave. */
    Flags = HalpDisableInterrupts();
    Raw = HalpReadPortUlong(Port) & Mask;
    Extended += (Raw - Last) & Mask;
    Last = Raw;
    Total = Extended;
    HalpRestoreInterrupts(Flags);
    return Total;
}
