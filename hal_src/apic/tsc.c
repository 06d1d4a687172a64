/*
 * tsc.c -- time measurement: calibrating the TSC and local-APIC timer, stalls, the performance counter.
 *
 * Calibration uses the one reference a PC/AT has whose period is known exactly without an interrupt: the RTC's
 * once-a-second update. Register A's update-in-progress bit rises 244 us before every update, so two successive
 * rising edges are one second apart. Counting TSC and APIC-timer ticks between them gives both frequencies.
 * The performance counter is the ACPI PM timer (a fixed 3.579545 MHz, unaffected by processor clock changes).
 */
#include "halp.h"

#define HALP_MICROSECONDS_PER_SECOND 1000000ULL

ULONG64 HalpTscFrequency;               /* Hz; 0 until calibrated */
ULONG HalpApicTimerFrequency;           /* Hz of the APIC timer at divide-by-1; 0 until calibrated */

LONG64 HalpPerformanceCounterBias;          /* added to the PM timer count (HalCalibratePerformanceCounter) */

VOID HalpCalibrateStallExecution(VOID)
{
    ULONG Regs[4];
    ULONG64 Flags, TscStart, TscEnd;
    ULONG ApicStart, ApicEnd;
    ULONG Mhz;

    HalpCpuid(CPUID_LEAF_FEATURES, 0, Regs);
    if (!(Regs[3] & CPUID1_EDX_TSC))
        KeBugCheckEx(HALP_BUGCHECK_HAL_INITIALIZATION_FAILED, HALP_INIT_NO_TSC, Regs[3], 0, 0);

    Flags = HalpDisableInterrupts();

    /* The APIC timer counts down from its maximum, one-shot, masked, undivided, for the whole second. */
    ApicWrite(APIC_LVT_TIMER, APIC_LVT_MASKED | VECTOR_PROFILE);
    ApicWrite(APIC_TIMER_DIVIDE, APIC_TIMER_DIVIDE_BY_1);

    /* Wait for a rising edge of UIP: first for UIP to be clear, then for it to rise. The index stays on
     * register A, so each poll is a single data-port read. There is deliberately no timeout: a clock that
     * never updates leaves nothing to calibrate against. */
    HalpWritePortUchar(CMOS_ADDRESS_PORT, RTC_REGISTER_A);
    while (HalpReadPortUchar(CMOS_DATA_PORT) & RTC_REG_A_UIP)
        ;
    while (!(HalpReadPortUchar(CMOS_DATA_PORT) & RTC_REG_A_UIP))
        ;
    ApicWrite(APIC_TIMER_INITIAL_COUNT, 0xFFFFFFFFUL);
    TscStart = HalpReadTsc();
    ApicStart = ApicRead(APIC_TIMER_CURRENT_COUNT);

    /* The next rising edge, exactly one second later. */
    while (HalpReadPortUchar(CMOS_DATA_PORT) & RTC_REG_A_UIP)
        ;
    while (!(HalpReadPortUchar(CMOS_DATA_PORT) & RTC_REG_A_UIP))
        ;
    TscEnd = HalpReadTsc();
    ApicEnd = ApicRead(APIC_TIMER_CURRENT_COUNT);
    ApicWrite(APIC_TIMER_INITIAL_COUNT, 0);

    HalpRestoreInterrupts(Flags);

    HalpTscFrequency = TscEnd - TscStart;
    HalpApicTimerFrequency = ApicStart - ApicEnd;

    /* StallScaleFactor is the TSC rate in ticks per microsecond (i.e. MHz), rounded. */
    Mhz = (ULONG)((HalpTscFrequency + HALP_MICROSECONDS_PER_SECOND / 2) / HALP_MICROSECONDS_PER_SECOND);
    HalpWritePcrUlong(KPCR_StallScaleFactor, Mhz);
    HalpWritePrcbUlong(KPRCB_MHz, Mhz);
}

/* Busy-wait on the TSC. Before calibration the PCR's StallScaleFactor (the initial guess) sets the pace. */
VOID NTAPI KeStallExecutionProcessor(ULONG MicroSeconds)
{
    ULONG64 Frequency = HalpTscFrequency;
    ULONG64 Start = HalpReadTsc(), Ticks;

    if (Frequency == 0)
        Frequency = (ULONG64)HalpReadPcrUlong(KPCR_StallScaleFactor) * HALP_MICROSECONDS_PER_SECOND;

    /* Whole seconds and the remainder separately: MicroSeconds * Frequency could overflow 64 bits. */
    Ticks = (MicroSeconds / HALP_MICROSECONDS_PER_SECOND) * Frequency +
            (MicroSeconds % HALP_MICROSECONDS_PER_SECOND) * Frequency / HALP_MICROSECONDS_PER_SECOND;
    while (HalpReadTsc() - Start < Ticks)
        HalpYieldProcessor();
}

LARGE_INTEGER NTAPI KeQueryPerformanceCounter(PLARGE_INTEGER PerformanceFrequency)
{
    LARGE_INTEGER Count;

    if (PerformanceFrequency != NULL)
        PerformanceFrequency->QuadPart = ACPI_PM_TIMER_FREQUENCY;
    Count.QuadPart = (LONGLONG)HalpReadPmTimer() + HalpPerformanceCounterBias;
    return Count;
}

/* The kernel's rendezvous to (re)set the performance counter on every processor at once: each processor
 * decrements Count, waits until all have arrived, then makes its counter continue from NewCount. With one
 * processor the rendezvous completes at once; the new base is real. */
VOID NTAPI HalCalibratePerformanceCounter(volatile LONG *Count, ULONG64 NewCount)
{
    ULONG64 Flags = HalpDisableInterrupts();

    InterlockedDecrement((PLONG)Count);
    while (*Count != 0)
        HalpYieldProcessor();

    HalpPerformanceCounterBias = (LONG64)NewCount - (LONG64)HalpReadPmTimer();
    HalpRestoreInterrupts(Flags);
}
