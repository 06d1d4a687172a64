/*
 * profile.c -- the profile interrupt, from the local-APIC timer in periodic mode on VECTOR_PROFILE.
 *
 * Only ProfileTime is a source here (the APIC timer counts time); hardware-event sources would need the PMU.
 * The timer's frequency comes from HalpCalibrateStallExecution; before calibration there is no way to set an
 * interval, so profiling cannot start.
 */
#include "halp.h"

/* The interval range accepted, in 100 ns units: 100 us .. 1 s. */
#define HALP_PROFILE_INTERVAL_MIN   1000
#define HALP_PROFILE_INTERVAL_MAX   10000000
#define HALP_100NS_PER_SECOND       10000000ULL

static ULONG_PTR HalpProfileInterval = HALP_PROFILE_INTERVAL_MIN * 10;     /* 1 ms until told otherwise */
static BOOLEAN HalpProfileRunning;

static ULONG HalpProfileInitialCount(VOID)
{
    ULONG64 Count = (ULONG64)HalpApicTimerFrequency * HalpProfileInterval / HALP_100NS_PER_SECOND;

    return Count == 0 ? 1 : (Count > 0xFFFFFFFFULL ? 0xFFFFFFFFUL : (ULONG)Count);
}

ULONG_PTR NTAPI HalSetProfileInterval(ULONG_PTR Interval)
{
    if (Interval < HALP_PROFILE_INTERVAL_MIN)
        Interval = HALP_PROFILE_INTERVAL_MIN;
    if (Interval > HALP_PROFILE_INTERVAL_MAX)
        Interval = HALP_PROFILE_INTERVAL_MAX;
    HalpProfileInterval = Interval;

    if (HalpProfileRunning)
        ApicWrite(APIC_TIMER_INITIAL_COUNT, HalpProfileInitialCount());
    return HalpProfileInterval;
}

ULONG_PTR HalpQueryProfileInterval(VOID)
{
    return HalpProfileInterval;
}

VOID NTAPI HalStartProfileInterrupt(KPROFILE_SOURCE ProfileSource)
{
    if (ProfileSource != ProfileTime || HalpApicTimerFrequency == 0)
        return;     /* not a source we have (README) */

    HalpConnectInterrupt(VECTOR_PROFILE, HalpProfileInterruptHandler);
    ApicWrite(APIC_TIMER_DIVIDE, APIC_TIMER_DIVIDE_BY_1);
    ApicWrite(APIC_LVT_TIMER, APIC_LVT_TIMER_PERIODIC | VECTOR_PROFILE);
    ApicWrite(APIC_TIMER_INITIAL_COUNT, HalpProfileInitialCount());
    HalpProfileRunning = TRUE;
}

VOID NTAPI HalStopProfileInterrupt(KPROFILE_SOURCE ProfileSource)
{
    if (ProfileSource != ProfileTime)
        return;

    ApicWrite(APIC_LVT_TIMER, APIC_LVT_MASKED | VECTOR_PROFILE);
    ApicWrite(APIC_TIMER_INITIAL_COUNT, 0);
    HalpProfileRunning = FALSE;
}

VOID HalpProfileInterruptHandler(PKTRAP_FRAME TrapFrame)
{
    KIRQL OldIrql = (KIRQL)__readcr8();

    __writecr8(IRQL_PROFILE);
    HALP_FIELD(UCHAR, TrapFrame, KTRAP_FRAME_PreviousIrql) = OldIrql;
    KeProfileInterruptWithSource(TrapFrame, ProfileTime);
    HalpSendEOI();
    __writecr8(OldIrql);
}
