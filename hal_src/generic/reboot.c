/*
 * reboot.c -- leaving the system: reset and halt.
 *
 * A PC/AT resets through the 8042 keyboard controller, whose output line 0 is wired to the CPU reset: command
 * 0xFE pulses it. Power-off would need the ACPI S5 sleep type from the DSDT's \_S5 object, i.e. an AML
 * interpreter; this HAL has none, so a power-down request halts instead (documented in the README).
 */
#include "halp.h"

/* Polls of the 8042 status before giving up waiting for its input buffer (about 10 ms). */
#define HALP_I8042_WAIT_US 10000

VOID HalpReboot(VOID)
{
    ULONG Waited;

    _disable();

    /* The controller takes a command only when its input buffer is empty. */
    for (Waited = 0; Waited < HALP_I8042_WAIT_US; Waited++)
    {
        if (!(HalpReadPortUchar(I8042_COMMAND_PORT) & I8042_STATUS_INPUT_FULL))
            break;
        KeStallExecutionProcessor(1);
    }
    HalpWritePortUchar(I8042_COMMAND_PORT, I8042_PULSE_RESET);

    /* The reset takes a moment to arrive; if it never does (no 8042), stop here rather than return into a
     * kernel that has already shut down. */
    KeStallExecutionProcessor(50000);
    DbgPrint("gen2hal: the 8042 reset did not happen; halting\n");
    HaliHaltSystem();
}

VOID NTAPI HalReturnToFirmware(FIRMWARE_REENTRY Action)
{
    switch (Action)
    {
    case HalRestartRoutine:
    case HalRebootRoutine:
        HalpReboot();
        break;

    case HalHaltRoutine:
    case HalPowerDownRoutine:
        /* No power-off without AML (see above): halt. */
        HaliHaltSystem();
        break;

    default:
        /* HalInteractiveModeRoutine and unknown codes: there is no firmware monitor to return to. The caller
         * has shut the system down, so returning would be wrong; halt. */
        DbgPrint("gen2hal: HalReturnToFirmware(%lu): no firmware monitor; halting\n", (ULONG)Action);
        HaliHaltSystem();
        break;
    }
}
