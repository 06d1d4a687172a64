/*
 * beep.c -- the PC speaker: 8254 channel 2 drives it through the gate and data bits of system control port B.
 */
#include "halp.h"

BOOLEAN NTAPI HalMakeBeep(ULONG Frequency)
{
    ULONG64 Flags = HalpDisableInterrupts();
    UCHAR PortB = HalpReadPortUchar(SYSTEM_CONTROL_PORT_B);
    ULONG Divisor;
    BOOLEAN Ok = TRUE;

    /* Silence first: a new tone starts from a stopped channel, and Frequency 0 means "stop". */
    PortB &= (UCHAR)~(SCPB_TIMER2_GATE | SCPB_SPEAKER_DATA);
    HalpWritePortUchar(SYSTEM_CONTROL_PORT_B, PortB);

    if (Frequency != 0)
    {
        Divisor = PIT_FREQUENCY / Frequency;
        if (Divisor == 0 || Divisor > 0xFFFF)
        {
            /* Above the input clock or below ~18.2 Hz: the counter cannot produce it. */
            Ok = FALSE;
        }
        else
        {
            HalpWritePortUchar(PIT_CMD, PIT_CMD_CH2_SQUARE_WAVE);
            HalpWritePortUchar(PIT_CH2, (UCHAR)(Divisor & 0xFF));
            HalpWritePortUchar(PIT_CH2, (UCHAR)(Divisor >> 8));
            HalpWritePortUchar(SYSTEM_CONTROL_PORT_B, PortB | SCPB_TIMER2_GATE | SCPB_SPEAKER_DATA);
        }
    }

    HalpRestoreInterrupts(Flags);
    return Ok;
}
