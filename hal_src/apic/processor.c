/*
 * processor.c -- idling and halting the processor.
 */
#include "halp.h"

/* The kernel's idle loop calls this with interrupts disabled. STI takes effect after the next instruction, so
 * no interrupt can slip in between it and HLT; the next interrupt ends the halt and we return with interrupts
 * enabled, as the idle loop expects. */
VOID NTAPI HalProcessorIdle(VOID)
{
    __asm__ __volatile__("sti; hlt" ::: "memory");
}

/* Stop this processor for good: interrupts off, halted; an NMI or SMI that wakes it finds the loop again. */
DECLSPEC_NORETURN VOID HaliHaltSystem(VOID)
{
    for (;;)
    {
        _disable();
        __halt();
    }
}
