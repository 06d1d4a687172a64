/*
 * rtctimer.c -- the system clock: the RTC's periodic interrupt (ISA IRQ 8), routed through the IOAPIC to
 * VECTOR_CLOCK.
 *
 * Rate r (register A's low nibble) gives 32768 >> (r - 1) Hz; we use rates 6 (1024 Hz) to 10 (64 Hz, the
 * default, 15.625 ms). A period is 10^7 / 2^(16 - r) units of 100 ns, which is not a whole number for rates 6-8,
 * so the clock keeps time in 1/1024ths of 100 ns: every tick adds the exact period to a running fraction and
 * hands the kernel its whole part. Over time the kernel is told exactly the time that passed.
 */
#include "halp.h"

#define HALP_RTC_FASTEST_RATE   6
#define HALP_RTC_DEFAULT_RATE   10
#define HALP_RTC_FRACTION_BITS  10      /* a period in 100 ns units times 1024 is a whole number for rates >= 6 */

/* The period of a rate in 100 ns / 1024: 10^7 * 1024 / (32768 >> (Rate - 1)) = 10^7 << (Rate - 6); and in whole
 * 100 ns units (what HalSetTimeIncrement reports). */
#define HALP_RTC_SCALED_INCREMENT(Rate) (10000000ULL << ((Rate) - HALP_RTC_FASTEST_RATE))
#define HALP_RTC_INCREMENT(Rate)        ((ULONG)(HALP_RTC_SCALED_INCREMENT(Rate) >> HALP_RTC_FRACTION_BITS))

/* Clock state. Not static: the functions that use it are replaced one by one (by source extent) in generated
 * variants, and what they leave behind must still compile. */
UCHAR HalpRtcNextRate;                  /* rate to switch to at the next tick, 0 = none pending */
ULONG64 HalpRtcScaledIncrement;         /* period of the current rate, in 100 ns / 1024 */
ULONG64 HalpRtcFraction;                /* time not yet reported, in 100 ns / 1024 */

VOID HalpInitializeClock(VOID)
{
    /* Rate first (register A's low nibble; the divider bits above it stay as the firmware set them). */
    HalpWriteCmos(RTC_REGISTER_A,
                  (HalpReadCmos(RTC_REGISTER_A) & ~RTC_REG_A_RATE_MASK) | HALP_RTC_DEFAULT_RATE);
    HalpRtcScaledIncrement = HALP_RTC_SCALED_INCREMENT(HALP_RTC_DEFAULT_RATE);
    HalpRtcNextRate = 0;
    HalpRtcFraction = 0;

    /* Periodic interrupts on. Register C is read before (a flag left pending from earlier would raise IRQ 8 the
     * moment PIE is set) and after (anything raised meanwhile), so the first edge the IOAPIC sees is a tick. */
    (VOID)HalpReadCmos(RTC_REGISTER_C);
    HalpWriteCmos(RTC_REGISTER_B, HalpReadCmos(RTC_REGISTER_B) | RTC_REG_B_PIE);
    (VOID)HalpReadCmos(RTC_REGISTER_C);

    KeSetTimeIncrement(ABI_TIME_INCREMENT_MAX, ABI_TIME_INCREMENT_MIN);

    /* The handler must be in place before the input is unmasked. */
    HalpConnectInterrupt(VECTOR_CLOCK, HalpClockInterruptHandler);
    HalpEnableIsaInterrupt(RTC_IRQ, VECTOR_CLOCK);
}

VOID HalpClockInterruptHandler(PKTRAP_FRAME TrapFrame)
{
    KIRQL OldIrql = (KIRQL)__readcr8();
    ULONG Increment;

    __writecr8(IRQL_CLOCK);
    HALP_FIELD(UCHAR, TrapFrame, KTRAP_FRAME_PreviousIrql) = OldIrql;

    /* Reading register C acknowledges the RTC: it drops IRQ 8 and arms the next periodic interrupt. */
    (VOID)HalpReadCmos(RTC_REGISTER_C);

    HalpRtcFraction += HalpRtcScaledIncrement;
    Increment = (ULONG)(HalpRtcFraction >> HALP_RTC_FRACTION_BITS);
    HalpRtcFraction &= (1ULL << HALP_RTC_FRACTION_BITS) - 1;

    /* A rate change takes effect from this tick on (HalSetTimeIncrement promised "at the next tick"). */
    if (HalpRtcNextRate != 0)
    {
        HalpWriteCmos(RTC_REGISTER_A, (HalpReadCmos(RTC_REGISTER_A) & ~RTC_REG_A_RATE_MASK) | HalpRtcNextRate);
        HalpRtcScaledIncrement = HALP_RTC_SCALED_INCREMENT(HalpRtcNextRate);
        HalpRtcNextRate = 0;
    }

    /* Keep the PM timer's 64-bit extension from missing a wrap while nobody else reads it. */
    (VOID)HalpReadPmTimer();

#if defined(GEN2HAL_TARGET_REACTOS_AMD64)
    KeUpdateSystemTime(TrapFrame, Increment, OldIrql);
#else
    KeUpdateSystemTime(TrapFrame, Increment);
#endif

    HalpSendEOI();
    __writecr8(OldIrql);
}

/* Pick the slowest rate whose period does not exceed the request, within the range announced to the kernel
 * (ABI_TIME_INCREMENT_MIN..MAX); the change happens at the next tick. Returns that rate's period. */
ULONG NTAPI HalSetTimeIncrement(ULONG DesiredIncrement)
{
    UCHAR Rate, Chosen = 0;

    for (Rate = HALP_RTC_FASTEST_RATE; Rate <= HALP_RTC_DEFAULT_RATE; Rate++)
    {
        ULONG Increment = HALP_RTC_INCREMENT(Rate);

        if (Increment < ABI_TIME_INCREMENT_MIN || Increment > ABI_TIME_INCREMENT_MAX)
            continue;
        if (Chosen == 0 || Increment <= DesiredIncrement)
            Chosen = Rate;      /* rates rise with the period: the last that fits is the slowest */
    }

    HalpRtcNextRate = Chosen;
    return HALP_RTC_INCREMENT(Chosen);
}

/* An extra clock tick on request (NT 6.1): the RTC clock is strictly periodic and never skips a tick, so the
 * requested tick is the next periodic one, at most one time increment away. */
VOID NTAPI HalRequestClockInterrupt(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
}
