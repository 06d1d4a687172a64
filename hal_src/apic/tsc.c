/*
 * tsc.c -- time measurement: calibrating the TSC and local-APIC timer, stalls, the performance counter.
 *
 * Calibration ("timer scaling") follows the Windows 7 HAL's two paths. Whenever the FADT declares a PM timer
 * (PM_TMR_LEN = 4, the only length ACPI allows it), both frequencies are measured against the ACPI PM timer, a fixed
 * 3.579545 MHz, read at the port in the legacy 32-bit FADT field PM_TMR_BLK; X_PM_TMR_BLK is not looked at. Only
 * a FADT without a PM timer leaves the other reference a PC/AT has whose period is known exactly without an
 * interrupt: the RTC's once-a-second update (register A's update-in-progress bit rises 244 us before every update,
 * so two successive rising edges are one second apart). Neither path has a timeout, as in the HAL modelled: a
 * reference that never moves leaves nothing to calibrate against. On Hyper-V Generation 2 the FADT declares
 * PM_TMR_LEN = 4 with PM_TMR_BLK = 0, so the PM-timer path reads port 0 (no device: all ones) forever -- the
 * endless loop of timer scaling published for 64-bit Windows 7 there.
 * The performance counter is the ACPI PM timer too (unaffected by processor clock changes).
 */
#include "halp.h"

#define HALP_MICROSECONDS_PER_SECOND 1000000ULL
/* The FADT's PM_TMR_LEN of a PM timer (ACPI 6.5 5.2.9: "must be 4"); any other value: no PM timer declared. */
#define HALP_PM_TIMER_BLOCK_LENGTH 4
/* PM-timer calibration window: 1/8 s of PM-timer ticks (447,443), long enough for a 1 ppm-class reading of
 * the TSC and short enough for a boot. */
#define HALP_PM_CALIBRATION_TICKS (ACPI_PM_TIMER_FREQUENCY / 8)

ULONG64 HalpTscFrequency;               /* Hz; 0 until calibrated */
ULONG HalpApicTimerFrequency;           /* Hz of the APIC timer at divide-by-1; 0 until calibrated */

LONG64 HalpPerformanceCounterBias;          /* added to the PM timer count (HalCalibratePerformanceCounter) */

/* Both paths live in this one function (no file-static helpers), so the generator can replace the whole of the
 * legacy calibration by its extent. */
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

    /* The APIC timer counts down from its maximum, one-shot, masked, undivided, for the whole window. */
    ApicWrite(APIC_LVT_TIMER, APIC_LVT_MASKED | VECTOR_PROFILE);
    ApicWrite(APIC_TIMER_DIVIDE, APIC_TIMER_DIVIDE_BY_1);

    if (HalpFadt.PmTmrLen == HALP_PM_TIMER_BLOCK_LENGTH)
    {
        /* The PM-timer path: the port is the legacy field's, whatever it holds (0 on Generation 2). */
        USHORT Port = (USHORT)HalpFadt.PmTmrBlk;
        ULONG Mask = (HalpFadt.Flags & ACPI_FADT_TMR_VAL_EXT) ? 0xFFFFFFFFUL : 0x00FFFFFFUL;
        ULONG First, Start, Elapsed;

        /* Start on a tick of the PM timer: wait for the count to change. */
        First = HalpReadPortUlong(Port) & Mask;
        while ((Start = HalpReadPortUlong(Port) & Mask) == First)
            ;
        ApicWrite(APIC_TIMER_INITIAL_COUNT, 0xFFFFFFFFUL);
        TscStart = HalpReadTsc();
        ApicStart = ApicRead(APIC_TIMER_CURRENT_COUNT);

        /* Ticks are counted modulo the timer's width, so a wrap inside the window costs nothing. */
        do
            Elapsed = ((HalpReadPortUlong(Port) & Mask) - Start) & Mask;
        while (Elapsed < HALP_PM_CALIBRATION_TICKS);
        TscEnd = HalpReadTsc();
        ApicEnd = ApicRead(APIC_TIMER_CURRENT_COUNT);
        ApicWrite(APIC_TIMER_INITIAL_COUNT, 0);

        HalpTscFrequency = (TscEnd - TscStart) * ACPI_PM_TIMER_FREQUENCY / Elapsed;
        HalpApicTimerFrequency = (ULONG)((ULONG64)(ApicStart - ApicEnd) * ACPI_PM_TIMER_FREQUENCY / Elapsed);
    }
    else
    {
        /* The RTC-edge path: wait for a rising edge of UIP, first for UIP to be clear, then for it to rise. The
         * index stays on register A, so each poll is a single data-port read. */
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

        HalpTscFrequency = TscEnd - TscStart;
        HalpApicTimerFrequency = ApicStart - ApicEnd;
    }

    HalpRestoreInterrupts(Flags);

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
