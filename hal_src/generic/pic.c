/*
 * pic.c -- the dual 8259A interrupt controllers of a PC/AT.
 *
 * An APIC HAL never takes interrupts from the 8259 pair, but on a PC-AT-compatible machine (MADT PCAT_COMPAT)
 * the pair is there and powered up in whatever state the firmware left it. We give it a known configuration
 * (vectors out of the exception range) and mask every input, so that nothing it does can reach a processor.
 */
#include "halp.h"

VOID HalpInitializeLegacyPICs(VOID)
{
    ULONG64 Flags = HalpDisableInterrupts();

    /* ICW1: begin initialisation, edge-triggered, cascaded, ICW4 follows. */
    HalpWritePortUchar(PIC1_CONTROL_PORT, PIC_ICW1_INIT | PIC_ICW1_ICW4_NEEDED);
    HalpWritePortUchar(PIC2_CONTROL_PORT, PIC_ICW1_INIT | PIC_ICW1_ICW4_NEEDED);

    /* ICW2: vector bases. */
    HalpWritePortUchar(PIC1_DATA_PORT, PIC1_VECTOR_BASE);
    HalpWritePortUchar(PIC2_DATA_PORT, PIC2_VECTOR_BASE);

    /* ICW3: the master has a slave on IRQ 2 (a bit mask); the slave's cascade identity is 2 (a number). */
    HalpWritePortUchar(PIC1_DATA_PORT, 1 << PIC_CASCADE_IRQ);
    HalpWritePortUchar(PIC2_DATA_PORT, PIC_CASCADE_IRQ);

    /* ICW4: 8086 mode, normal EOI. */
    HalpWritePortUchar(PIC1_DATA_PORT, PIC_ICW4_8086_MODE);
    HalpWritePortUchar(PIC2_DATA_PORT, PIC_ICW4_8086_MODE);

    /* OCW1: mask every input of both controllers. */
    HalpWritePortUchar(PIC1_DATA_PORT, PIC_MASK_ALL);
    HalpWritePortUchar(PIC2_DATA_PORT, PIC_MASK_ALL);

    HalpRestoreInterrupts(Flags);
}
